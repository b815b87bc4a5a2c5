//! A check reader that reads only when asked (Epson's `FS a`, profile `[micr] read_command`):
//! while a check capture this reader may serve is armed, one read command is outstanding. It is
//! written when such a capture is armed (or the reader attaches with one armed), again after
//! each read that left one armed (an unreadable check, an abnormal end), so the customer can
//! insert the check again, and again when another capture comes first in line (the one asked
//! for timed out or was cancelled: the printer may have given up on that command too). Card
//! captures and readers that send by themselves never ask.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::agent::captures::Captures;
use crate::agent::events::{EventHub, LaneEvent};

/// Starts the task asking reader `id` (whose thread writes what `tx` carries) for each check.
/// It ends when the reader's thread is gone (its receiver dropped) or when aborted.
pub fn spawn_micr_asker(
    id: String,
    command: Vec<u8>,
    tx: std_mpsc::Sender<Vec<u8>>,
    captures: Arc<Captures>,
    events: &EventHub,
) -> JoinHandle<()> {
    let mut changed = captures.subscribe();
    let mut lane = events.subscribe();
    tokio::spawn(async move {
        // The capture the outstanding command was written for (the reader has not answered).
        let mut asked: Option<String> = None;
        loop {
            let first = captures.check_armed_for(&id);
            if first.is_some() && first != asked {
                if tx.send(command.clone()).is_err() {
                    return;
                }
                tracing::info!(reader = %id, capture = first.as_deref(), "check capture armed: asked the MICR reader to read");
                asked = first;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                ev = lane.recv() => match ev {
                    // The reader answered (a read, or an unreadable one: every failed read has
                    // one `swipe-unreadable`, a failed decode also a `swipe` with its code, so
                    // that one is not counted twice), or came back without the command it had:
                    // ask again if a check capture is still armed.
                    Ok(LaneEvent::Swipe { reader, error_code: None, .. })
                    | Ok(LaneEvent::SwipeUnreadable { reader, .. })
                    | Ok(LaneEvent::ReaderAttached { reader, .. }) if reader == id => asked = None,
                    Ok(_) => {}
                    // Missed events may have held this reader's answer.
                    Err(RecvError::Lagged(_)) => asked = None,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::check_record::CheckOptions;
    use std::time::Duration;

    const MIN: Duration = Duration::from_secs(60);
    const WAIT: Duration = Duration::from_secs(5);

    /// The next command within `d` (blocking: the task runs on the other worker).
    fn recv_within(rx: &std_mpsc::Receiver<Vec<u8>>, d: Duration) -> Option<Vec<u8>> {
        rx.recv_timeout(d).ok()
    }

    /// No command comes for a while.
    fn recv(rx: &std_mpsc::Receiver<Vec<u8>>) -> Option<Vec<u8>> {
        recv_within(rx, Duration::from_millis(300))
    }

    fn swipe(reader: &str, error_code: Option<&str>) -> LaneEvent {
        LaneEvent::Swipe {
            reader: reader.into(),
            format: Some("micr".into()),
            entry_mode: None,
            masked_pan: None,
            masked_account: None,
            last4: None,
            capture_id: None,
            error_code: error_code.map(String::from),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asks_once_per_armed_check_and_again_after_a_bad_read() {
        let captures = Arc::new(Captures::new(4));
        let events = EventHub::new(16);
        let (tx, rx) = std_mpsc::channel();
        let task = spawn_micr_asker(
            "epson".into(),
            vec![0x1C, 0x61, 0],
            tx,
            captures.clone(),
            &events,
        );
        // A card capture, and a check capture for another reader: no command.
        captures.arm(None, Default::default(), MIN).unwrap();
        captures
            .arm_check(
                Some("other".into()),
                Default::default(),
                MIN,
                CheckOptions::default(),
            )
            .unwrap();
        assert_eq!(recv(&rx), None);
        // A check capture it may serve: one command, not one per change.
        let first = captures
            .arm_check(None, Default::default(), MIN, CheckOptions::default())
            .unwrap();
        assert_eq!(recv_within(&rx, WAIT), Some(vec![0x1C, 0x61, 0]));
        captures
            .arm(Some("epson".into()), Default::default(), MIN)
            .unwrap();
        let id = captures
            .arm_check(
                Some("epson".into()),
                Default::default(),
                MIN,
                CheckOptions::default(),
            )
            .unwrap();
        assert_eq!(recv(&rx), None, "still outstanding for the first");
        // The first cancelled: the next in line is asked for.
        captures.cancel(&first).unwrap();
        assert!(recv_within(&rx, WAIT).is_some(), "asked for the next one");
        // Another reader's read changes nothing; this reader's unreadable check asks again.
        events.publish(swipe("other", None));
        assert_eq!(recv(&rx), None);
        // A failed decode, as the pipeline reports it: two events, one more command.
        events.publish(LaneEvent::SwipeUnreadable {
            reader: "epson".into(),
            code: "micr-abnormal-end".into(),
        });
        events.publish(swipe("epson", Some("micr-abnormal-end")));
        assert!(
            recv_within(&rx, WAIT).is_some(),
            "asked again after the bad read"
        );
        assert_eq!(recv(&rx), None, "once per bad read");
        // The good read took the capture: nothing more to ask for.
        assert_eq!(captures.take_for_check("epson").map(|c| c.id), Some(id));
        events.publish(swipe("epson", None));
        assert_eq!(recv(&rx), None);
        task.abort();
    }
}
