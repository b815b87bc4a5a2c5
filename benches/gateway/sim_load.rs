//! Load bench: simulator saves per second over loopback with 32 concurrent clients, and the
//! client's own CPU cost per request (encode the record + read the reply).
//!
//! `cargo bench --bench gateway_sim_load` (env: SIM_LOAD_SECS, default 5; SIM_LOAD_CLIENTS, 32).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardlane::gateway::client::outcome_from_http;
use cardlane::gateway::record::{CardRequest, CustomerFields, CustomerRequest};
use cardlane::gateway::sim::{self, SimConfig};
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient, Outcome, RetryPolicy};

const KEY: &str = "bench-key";

fn request(id: String) -> CustomerRequest {
    CustomerRequest {
        client_ip: Some("10.0.0.5".into()),
        customer: CustomerFields {
            customer_id: Some(id),
            first_name: Some("Oscar".into()),
            last_name: Some("Brady".into()),
            zip: Some("32503".into()),
            action_code: Some("1".into()),
            ..Default::default()
        },
        card: Some(CardRequest {
            track_data: Some(
                "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?".into(),
            ),
            entry_mode: Some("90".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env_num("SIM_LOAD_SECS", 5);
    let clients = env_num("SIM_LOAD_CLIENTS", 32);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cfg = SimConfig::new(ApiKey::new(KEY));
        cfg.db_path = Some(dir.path().join("load.db"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let server = sim::spawn(cfg, listener).expect("sim");
        let mut ccfg = ClientConfig::new(&server.base_url, ApiKey::new(KEY));
        ccfg.retry = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let client = GatewayClient::new(ccfg).expect("client");

        let saved = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let (client, saved, failed) = (client.clone(), saved.clone(), failed.clone());
            tasks.spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    // Half new customers, half upserts of one seen before.
                    let id = format!("L{c}-{}", n / 2);
                    n += 1;
                    match client.save_once(&request(id)).await {
                        Outcome::Saved { .. } => saved.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = started.elapsed().as_secs_f64();
        let ok = saved.load(Ordering::Relaxed);
        println!(
            "sim_load: {clients} clients, {elapsed:.1}s: {ok} saved, {} failed, {:.0} saves/s",
            failed.load(Ordering::Relaxed),
            ok as f64 / elapsed
        );
        server.shutdown().await;
    });

    // Client overhead: what the client does per request besides waiting on the network.
    let reply = br#""{\"customer_response\":{\"result_code\":1,\"result_sub_code\":\"000\",\"result_text\":\"SUCCESS\",\"transaction_datetime\":\"20261201T005223Z\",\"token\":\"7756626554504814\",\"account_type\":\"VI\",\"account_last_4\":\"1111\",\"expiration_date\":\"1225\"},\"customer\":{\"customer_id\":\"C1\",\"first_name\":\"Oscar\"}}""#;
    let req = request("C1".into());
    let rounds = 200_000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        let body = serde_json::to_vec(std::hint::black_box(&req)).expect("encode");
        std::hint::black_box(body);
        let o = outcome_from_http(200, std::hint::black_box(reply), Some("C1"));
        std::hint::black_box(o);
    }
    println!(
        "client_overhead: {:.2} µs per request (encode record + parse double-encoded reply)",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
    );
}
