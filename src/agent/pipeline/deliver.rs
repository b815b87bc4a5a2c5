//! The uploader's [`Deliver`] backed by the real gateway client: one attempt per call (the
//! uploader keeps its own backoff), outcomes mapped to the queue's vocabulary.
use std::sync::Arc;
use std::time::Instant;

use crate::agent::metrics::Metrics;
use crate::gateway::{CustomerRequest, GatewayClient, Outcome};
use crate::queue::{Deliver, DeliverFuture, DeliverResult, FinalAnswer, Saved};

/// Sends queued payloads (serialized Customer requests) through a [`GatewayClient`].
#[derive(Clone, Debug)]
pub struct GatewayDeliver {
    client: GatewayClient,
    metrics: Option<Arc<Metrics>>,
}

impl GatewayDeliver {
    pub fn new(client: GatewayClient) -> Self {
        GatewayDeliver {
            client,
            metrics: None,
        }
    }

    /// Also records each round trip in `cardlane_gateway_latency_seconds`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// The queue's view of a gateway outcome.
pub fn deliver_result(outcome: Outcome) -> DeliverResult {
    match outcome {
        Outcome::Saved { token, .. } => DeliverResult::Final(FinalAnswer::Saved(Saved { token })),
        Outcome::Declined { text } => DeliverResult::Final(FinalAnswer::Declined(text)),
        Outcome::Rejected { text } => DeliverResult::Final(FinalAnswer::Rejected(text)),
        Outcome::AuthFailed => DeliverResult::AuthFailed("the gateway refused the API key".into()),
        Outcome::Transient { reason } => DeliverResult::Transient(reason),
        // Pauses uploads like a refused key: every payload stays queued until it is fixed.
        Outcome::Misconfigured { reason } => DeliverResult::AuthFailed(reason),
    }
}

impl Deliver for GatewayDeliver {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a> {
        Box::pin(async move {
            // A payload that no longer parses can never be sent: a final rejection, not a retry.
            let req: CustomerRequest = match serde_json::from_slice(payload) {
                Ok(r) => r,
                Err(_) => {
                    return DeliverResult::Final(FinalAnswer::Rejected(
                        "stored record is not a Customer request".into(),
                    ))
                }
            };
            let started = Instant::now();
            let outcome = self.client.save_once(&req).await;
            if let Some(m) = &self.metrics {
                m.observe_gateway_latency(started.elapsed());
            }
            deliver_result(outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_error_pauses_and_keeps_the_record() {
        // Paused like a refused key: the uploader hands the record back, never wipes it.
        let r = deliver_result(Outcome::Misconfigured {
            reason: "the gateway URL answered http status 404".into(),
        });
        assert_eq!(
            r,
            DeliverResult::AuthFailed("the gateway URL answered http status 404".into())
        );
    }
}
