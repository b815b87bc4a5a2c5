//! Check customers at the simulator over loopback HTTP: routing check digit, 8-15 account
//! digits, account type and SEC codes (customer-api.md `check`), a token for a saved account,
//! and `/_sim/customers` showing the routing number and the account's last 4 only.
use std::time::Duration;

use cardlane::gateway::record::{CheckRequest, CustomerFields, CustomerRequest};
use cardlane::gateway::sim::{self, SimConfig, SimServer};
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient, Outcome, RetryPolicy};
use serde_json::Value;

const KEY: &str = "sim-checks-key-5b1e";

async fn start() -> SimServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::spawn(SimConfig::new(ApiKey::new(KEY)), listener).unwrap()
}

fn client(base: &str) -> GatewayClient {
    let mut cfg = ClientConfig::new(base, ApiKey::new(KEY));
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
    };
    cfg.total_timeout = Duration::from_secs(20);
    GatewayClient::new(cfg).unwrap()
}

fn check_req(id: &str, f: impl FnOnce(&mut CheckRequest)) -> CustomerRequest {
    let mut check = CheckRequest {
        // 122000218: 3·(1+0+2) + 7·(2+0+1) + (2+0+8) = 9 + 21 + 10 = 40 ✓
        aba_code: Some("122000218".into()),
        account_number: Some("123456789".into()),
        account_type: Some("0".into()),
        sec_code: Some("1".into()),
        ..Default::default()
    };
    f(&mut check);
    CustomerRequest {
        customer: CustomerFields {
            customer_id: Some(id.into()),
            first_name: Some("Pat".into()),
            last_name: Some("Check".into()),
            action_code: Some("1".into()),
            ..Default::default()
        },
        check: Some(check),
        ..Default::default()
    }
}

async fn customers(base: &str) -> (Vec<Value>, String) {
    let text = reqwest::Client::new()
        .get(format!("{base}/_sim/customers"))
        .header("x-authorization", KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    (v.as_array().cloned().unwrap_or_default(), text)
}

#[tokio::test]
async fn personal_and_business_checks_are_saved_with_a_token() {
    let sim = start().await;
    let c = client(&sim.base_url);
    let personal = check_req("CHK-P", |_| {});
    // Business: account type 2, CCD (0); 021000021: 7·(2+0+2) + (1+0+1) = 30 ✓.
    let business = check_req("CHK-B", |k| {
        k.aba_code = Some("021000021".into());
        k.account_number = Some("987654321012345".into());
        k.account_type = Some("2".into());
        k.sec_code = Some("0".into());
    });
    let mut tokens = Vec::new();
    for (req, last4) in [(&personal, "6789"), (&business, "2345")] {
        match c.save_customer(req).await.outcome {
            Outcome::Saved {
                token: Some(t),
                last4: got,
                ..
            } => {
                assert_eq!(t.len(), 16);
                assert!(t.bytes().all(|b| b.is_ascii_digit()));
                assert_eq!(got.as_deref(), Some(last4));
                tokens.push(t);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_ne!(tokens[0], tokens[1]);
    let (list, text) = customers(&sim.base_url).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["customer_id"], "CHK-P");
    assert_eq!(list[0]["aba_code"], "122000218");
    assert_eq!(list[0]["account_last_4"], "6789");
    assert_eq!(list[0]["token"], tokens[0].as_str());
    assert_eq!(list[1]["aba_code"], "021000021");
    assert_eq!(list[1]["account_last_4"], "2345");
    assert!(!text.contains("123456789") && !text.contains("987654321012345"));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_check_fields_are_refused_naming_the_field() {
    let sim = start().await;
    let c = client(&sim.base_url);
    type Set = fn(&mut CheckRequest);
    let cases: &[(Set, &str)] = &[
        // 122000217: the sum is 39.
        (|k| k.aba_code = Some("122000217".into()), "check.aba_code"),
        (|k| k.aba_code = Some("12200021".into()), "check.aba_code"),
        (
            |k| k.account_number = Some("1234567".into()),
            "check.account_number",
        ),
        (
            |k| k.account_number = Some("1234567890123456".into()),
            "check.account_number",
        ),
        (|k| k.account_type = Some("3".into()), "check.account_type"),
        (|k| k.sec_code = Some("6".into()), "check.sec_code"),
        (
            |k| k.check_number = Some("1321".into()),
            "check.check_number",
        ),
    ];
    for (i, (set, field)) in cases.iter().enumerate() {
        let req = check_req(&format!("BAD{i}"), set);
        match c.save_customer(&req).await.outcome {
            Outcome::Rejected { text: message } => {
                assert!(message.contains(field), "{field}: {message}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    // BOC (4) with a six-digit check number is accepted.
    let boc = check_req("BOC", |k| {
        k.sec_code = Some("4".into());
        k.check_number = Some("001321".into());
    });
    assert!(matches!(
        c.save_customer(&boc).await.outcome,
        Outcome::Saved { .. }
    ));
    let (list, _) = customers(&sim.base_url).await;
    assert_eq!(list.len(), 1, "nothing saved for a refused check");
    sim.shutdown().await;
}
