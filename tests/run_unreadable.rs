//! A bad read on a serial reader under `cardlane run` (a PTY plays the reader): logged with its
//! reason code, counted as `cardlane_reads_unreadable_total{reader,code}` and sent as the SSE
//! event `swipe-unreadable` `{"reader","code"}`, for a damaged frame the framer catches
//! (bad LRC) and for a whole frame the decoder refuses.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use serialport::{SerialPort, TTYPort};

mod common;
use common::agent::Agent;

const API_KEY: &str = "unreadable-test-key";

/// The ID TECH original-format frame of the framer tests (LRC BF, sum 65), LRC damaged.
const BAD_LRC_FRAME: &str = "023F0000020018003B3431313131312A2A2A2A2A2A313131313D2A2A2A2A3F2A00112233445566770011223344556677001122334455667762994900000000000001AF6503";

fn start_agent(dir: &Path, pts: &str) -> (Agent, String) {
    let config = dir.join("cardlane.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nbase_url = \"http://127.0.0.1:9\"\n[queue]\npath = \"{q}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{t}\"\n\
             [[readers]]\nid = \"front\"\ndevice = \"serial:{pts}@9600\"\n\
             [devices]\nhotplug = false\n",
            q = dir.join("queue.db").display(),
            t = dir.join("api-token").display(),
        ),
    )
    .unwrap();
    let agent = Agent::start(&config, API_KEY, "warn");
    let base = agent.api.clone();
    (agent, base)
}

#[test]
fn bad_reads_on_a_serial_reader_are_logged_counted_and_sent_as_events() {
    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = TTYPort::pair().expect("openpty");
    let pts = slave.name().expect("pty name");
    drop(slave);
    let (mut agent, base) = start_agent(dir.path(), &pts);
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    let token = token.trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();

    // Wait until the reader is open, then subscribe to the events.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = rt.block_on(async {
            http.get(format!("{base}/v1/readers"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        if v["readers"][0]["state"] == "connected" {
            break;
        }
        assert!(Instant::now() < end, "reader never connected: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut sse = rt.block_on(async {
        http.get(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
    });

    // A frame the framer finds damaged, then keyboard-style text no decoder takes.
    master
        .write_all(&hex::decode(BAD_LRC_FRAME).unwrap())
        .unwrap();
    master.flush().unwrap();

    let mut text = String::new();
    let mut next_event = || {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    const HEAD: &str = "event: swipe-unreadable\ndata: ";
                    if let Some(at) = text.find(HEAD) {
                        let rest = &text[at + HEAD.len()..];
                        if let Some(end) = rest.find('\n') {
                            let event = serde_json::from_str::<Value>(&rest[..end]).unwrap();
                            text = rest[end..].to_string();
                            return event;
                        }
                    }
                    let chunk = sse.chunk().await.unwrap().expect("event stream ended");
                    text.push_str(&String::from_utf8_lossy(&chunk));
                }
            })
            .await
            .expect("no swipe-unreadable event within 20 s")
        })
    };
    assert_eq!(
        next_event(),
        serde_json::json!({"type": "swipe-unreadable", "reader": "front", "code": "bad-lrc"})
    );

    // A well-framed message (LRC and sum right) whose content is no card read: the decoder
    // refuses it, and that is reported the same way.
    let data = [0x00u8, 0x01, 0x02, 0x03, 0x04];
    let mut frame = vec![0x02, data.len() as u8, 0x00];
    frame.extend_from_slice(&data);
    frame.push(data.iter().fold(0u8, |a, b| a ^ b));
    frame.push(data.iter().fold(0u8, |a, b| a.wrapping_add(*b)));
    frame.push(0x03);
    master.write_all(&frame).unwrap();
    master.flush().unwrap();
    let second = next_event();
    assert_eq!(second["reader"], "front", "{second}");
    let code = second["code"].as_str().unwrap().to_string();
    assert!(!code.is_empty() && code != "bad-lrc", "{second}");

    let metrics = rt.block_on(async {
        http.get(format!("{base}/metrics"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for code in ["bad-lrc", code.as_str()] {
        let line = format!("cardlane_reads_unreadable_total{{code=\"{code}\",reader=\"front\"}} 1");
        assert!(metrics.contains(&line), "{line} missing in {metrics}");
    }
    let log = agent
        .wait_line(|l| l.contains("unreadable read"))
        .unwrap_or_else(|| panic!("no unreadable-read line in {:?}", agent.seen));
    assert!(log.contains("bad-lrc") && log.contains("front"), "{log}");
}
