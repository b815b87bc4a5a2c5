//! The gateway simulator in the test's own process, on 127.0.0.1:0 and its own runtime, alive
//! as long as the value.
use cardlane::gateway::secret::ApiKey;
use cardlane::gateway::sim::{self, SimConfig, SimServer};
use serde_json::Value;

/// The ANSI X9.24 test BDK that `reader-sim` and the synthesised fixtures encrypt under.
pub const TEST_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

pub struct Gateway {
    rt: tokio::runtime::Runtime,
    server: Option<SimServer>,
    pub base_url: String,
    api_key: String,
}

impl Gateway {
    pub fn start(api_key: &str) -> Gateway {
        Gateway::start_with(api_key, |_| {})
    }

    /// Decrypts with the test BDK, as a gateway holding the key would.
    pub fn start_decrypting(api_key: &str) -> Gateway {
        Gateway::start_with(api_key, |c| {
            c.bdks = vec![sim::Bdk::from_hex(TEST_BDK).unwrap()];
        })
    }

    pub fn start_with(api_key: &str, configure: impl FnOnce(&mut SimConfig)) -> Gateway {
        let mut config = SimConfig::new(ApiKey::new(api_key));
        configure(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sim::spawn(config, l).unwrap()
        });
        let base_url = server.base_url.clone();
        Gateway {
            rt,
            server: Some(server),
            base_url,
            api_key: api_key.to_string(),
        }
    }

    /// `/_sim/customers`: what the simulator saved.
    pub fn customers(&self) -> Vec<Value> {
        let url = format!("{}/_sim/customers", self.base_url);
        self.rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .header("x-authorization", &self.api_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    /// `/_sim/faults`: POST a fault, or DELETE them all.
    pub fn faults(&self, add: Option<Value>) {
        let url = format!("{}/_sim/faults", self.base_url);
        let status = self.rt.block_on(async {
            let c = reqwest::Client::new();
            let req = match &add {
                Some(body) => c.post(&url).json(body),
                None => c.delete(&url),
            };
            req.header("x-authorization", &self.api_key)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(status.is_success(), "{url}: {status}");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}
