//! The console in a real browser: headless Chromium (tests/browser) against `cardlane run`
//! with a serial reader on a PTY and the gateway simulator on loopback. One browser session
//! checks, in order: sign-in with `cardlane console-url`'s one-time URL; a swipe written to the
//! PTY shows in the live events with a masked PAN; the queue shows a record held while the
//! simulator fails and is empty after the Flush button; a page from an origin not in
//! `allowed_origins` cannot call the API and one in it can (an event stream by ticket
//! included). Screenshots at 1024x600 and 1440x900 are taken on the way
//! (`CARDLANE_SCREENSHOTS=DIR` keeps them; docs/ holds the committed ones).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use serialport::{SerialPort, TTYPort};

mod browser;
mod common;
use browser::{png_size, Browser};
use common::gateway::Gateway;
use common::{Lines, OutputWithin, Reaper};

const API_KEY: &str = "console-browser-key";
/// Clear ISO 7813 tracks as a keyboard-wedge head types them (CR-terminated), test PANs only.
const SWIPE_1: &str =
    "%B4111111111111111^DOE/JANE^2912101000000000000?;4111111111111111=29121010000000000000?\r";
const SWIPE_2: &str =
    "%B5555555555554444^PUBLIC/JOHN^3001101000000000000?;5555555555554444=30011010000000000000?\r";
const PANS: [&str; 2] = ["4111111111111111", "5555555555554444"];

/// A page for the kiosk origins: any GET gets the same small HTML document.
fn kiosk_page_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            // One thread per connection: Chromium opens connections it may never send a
            // request on (preconnects), and a server that waits on one serves no other.
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                let mut buf = [0u8; 4096];
                if matches!(conn.read(&mut buf), Ok(0) | Err(_)) {
                    return;
                }
                let body = "<!doctype html><title>kiosk</title><p>kiosk page</p>";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn write_config(dir: &Path, gateway: &str, reader: &str, kiosk_origin: &str) -> std::path::PathBuf {
    let path = dir.join("cardlane.toml");
    let text = format!(
        r#"
[gateway]
base_url = "{gateway}"
[gateway.retry]
# Long enough that only the Flush button sends a held record during the test.
initial_backoff = "10m"
max_backoff = "10m"
[queue]
path = "{q}"
[api]
listen = "127.0.0.1:0"
token_file = "{t}"
allowed_origins = ["{kiosk_origin}"]
[[readers]]
id = "front"
device = "{reader}"
profile = "generic-keyboard-wedge"
[lane]
on_swipe = "save"
allow_clear_text = true
[devices]
hotplug = false
"#,
        q = dir.join("queue.db").display(),
        t = dir.join("api-token").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn swipe(master: &mut TTYPort, text: &str) {
    master.write_all(text.as_bytes()).unwrap();
    master.flush().unwrap();
}

/// Keeps a screenshot when `CARDLANE_SCREENSHOTS` names a directory.
fn keep(png: &[u8], name: &str) {
    if let Ok(dir) = std::env::var("CARDLANE_SCREENSHOTS") {
        std::fs::write(Path::new(&dir).join(name), png).unwrap();
    }
}

fn no_pan(label: &str, text: &str) {
    for pan in PANS {
        assert!(!text.contains(pan), "{label}: a clear PAN is shown");
    }
}

#[test]
fn console_in_a_real_browser() {
    let gateway = Gateway::start(API_KEY);
    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = TTYPort::pair().expect("openpty");
    let pts = slave.name().unwrap();
    drop(slave);
    let kiosk_port = kiosk_page_server();
    let allowed = format!("http://127.0.0.1:{kiosk_port}");
    // The same page server under another name is another origin, not in the list.
    let other = format!("http://localhost:{kiosk_port}");
    let config = write_config(
        dir.path(),
        &gateway.base_url,
        &format!("serial:{pts}@9600"),
        &allowed,
    );

    let mut agent = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--config"])
        .arg(&config)
        .env("CARDLANE_API_KEY", API_KEY)
        .env("CARDLANE_LOG", "cardlane=info")
        .env_remove("CARDLANE_QUEUE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Lines::new(agent.stdout.take().unwrap());
    let mut err = Lines::new(agent.stderr.take().unwrap());
    let agent = Reaper(agent);
    let ready = out.until("the ready line", |l| l.starts_with("ready: api on "));
    let api = ready.trim_start_matches("ready: api on ").to_string();

    // `console-url` prints the one-time URL as its first line.
    let cu = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["console-url", "--config"])
        .arg(&config)
        .args(["--api", &api])
        .output_within();
    assert!(cu.status.success(), "{cu:?}");
    let url = String::from_utf8(cu.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!("{api}/console/signin?code=")),
        "{url}"
    );
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    assert!(!url.contains(token.trim()), "the token is not in the URL");

    let mut b = Browser::launch();
    let page = b.new_page();
    b.viewport(&page, 1024, 600);

    // Sign in with the one-time URL: the console shows, the code is gone from the address,
    // the session cookie is out of the page script's reach, events are live.
    b.goto(&page, &url);
    b.wait_for(
        &page,
        "the signed-in console with live events",
        "!document.getElementById('app').hidden && document.getElementById('live').textContent === 'events: live'",
    );
    assert_eq!(b.eval(&page, "location.href"), json!(format!("{api}/")));
    assert_eq!(b.eval(&page, "document.cookie"), json!(""), "HttpOnly");
    b.wait_for(
        &page,
        "the reader connected",
        "document.querySelector('#readers').textContent.includes('connected')",
    );
    let readers = b.eval(&page, "document.querySelector('#readers').innerText");
    let readers = readers.as_str().unwrap();
    assert!(
        readers.contains("front") && readers.contains("generic-keyboard-wedge"),
        "{readers}"
    );

    // The one-time URL works once: a second browser tab with it gets the sign-in form.
    let second = b.new_page();
    b.goto(&second, &url);
    b.wait_for(
        &second,
        "the sign-in form after a spent code",
        "!document.getElementById('signin').hidden && document.getElementById('signin-msg').textContent.includes('used or expired')",
    );

    // A swipe on the PTY shows in the live events, masked.
    swipe(&mut master, SWIPE_1);
    b.wait_for(
        &page,
        "the swipe in the live events",
        "[...document.querySelectorAll('#events li')].some(li => li.dataset.kind === 'swipe' && li.textContent.includes('411111******1111'))",
    );
    b.wait_for(
        &page,
        "the saved read in the last reads",
        "[...document.querySelectorAll('#reads li')].some(li => li.dataset.kind === 'saved' && li.textContent.includes('411111******1111'))",
    );

    // The simulator fails: the next swipe is held, and the queue view shows it.
    gateway.faults(Some(json!({"kind": "http-500", "count": 1000})));
    swipe(&mut master, SWIPE_2);
    b.wait_for(
        &page,
        "the held record in the queue view, between attempts",
        // The row says `sending` while a retry is on the wire and `pending` between them.
        "document.getElementById('queue-held').textContent === '1' && document.querySelector('#queue').textContent.includes('555555******4444') && document.querySelector('#queue tr').innerText.includes('pending')",
    );
    let row = b.eval(&page, "document.querySelector('#queue tr').innerText");
    let row = row.as_str().unwrap();
    assert!(row.contains("pending"), "{row}");
    assert!(row.contains("in "), "next attempt shown: {row}");

    // Screenshots at the kiosk's and a desktop's size, with events, reads and the queue.
    let shot = b.screenshot(&page);
    assert_eq!(png_size(&shot), (1024, 600));
    keep(&shot, "console-1024x600.png");
    b.viewport(&page, 1440, 900);
    let shot = b.screenshot(&page);
    assert_eq!(png_size(&shot), (1440, 900));
    keep(&shot, "console-1440x900.png");

    // The simulator is back: Flush sends the held record and the queue empties.
    gateway.faults(None);
    b.eval(&page, "document.getElementById('flush').click(); true");
    b.wait_for(
        &page,
        "the flush report and an empty queue",
        "document.getElementById('flush-msg').textContent === 'sent 1, failed 0, remaining 0' && document.getElementById('queue-held').textContent === '0' && document.querySelector('#queue').children.length === 0",
    );
    let text = b.eval(&page, "document.body.innerText");
    no_pan("the console", text.as_str().unwrap());

    // Test read: Arm waits for a card on the chosen reader, Cancel ends it.
    b.eval(
        &page,
        "document.getElementById('test-reader').value = 'front'; document.getElementById('test-arm').click(); true",
    );
    b.wait_for(
        &page,
        "the armed capture",
        "/^capture \\S+: waiting$/.test(document.getElementById('test-state').textContent) && !document.getElementById('test-cancel').disabled",
    );
    b.eval(
        &page,
        "document.getElementById('test-cancel').click(); true",
    );
    b.wait_for(
        &page,
        "the cancelled capture",
        "document.getElementById('test-state').textContent.endsWith(': cancelled') && !document.getElementById('test-arm').disabled",
    );

    // Kiosk pages: fetch with the bearer token from another origin.
    let kiosk = b.new_page();
    let call = format!(
        "fetch('{api}/v1/health', {{headers: {{Authorization: 'Bearer {}'}}}})\
         .then(r => r.json()).then(h => 'status ' + h.status).catch(e => 'blocked: ' + e.name)",
        token.trim()
    );
    b.goto(&kiosk, &format!("{other}/"));
    assert_eq!(b.eval(&kiosk, &call), json!("blocked: TypeError"));
    b.goto(&kiosk, &format!("{allowed}/"));
    assert_eq!(b.eval(&kiosk, &call), json!("status ok"));
    // ...and an event stream opened with a ticket, which an EventSource can carry.
    let stream = format!(
        "fetch('{api}/v1/events/ticket', {{method: 'POST', headers: {{Authorization: 'Bearer {}'}}}})\
         .then(r => r.json()).then(t => new Promise(done => {{\
            const es = new EventSource('{api}/v1/events?ticket=' + t.ticket);\
            es.onopen = () => {{ es.close(); done('open'); }};\
            es.onerror = () => {{ es.close(); done('error'); }};\
         }}))",
        token.trim()
    );
    assert_eq!(b.eval(&kiosk, &stream), json!("open"));
    drop(b);

    // Nothing the agent printed shows a clear PAN either.
    drop(agent);
    no_pan("agent stdout", &out.rest().join("\n"));
    no_pan("agent stderr", &err.rest().join("\n"));
    drop(gateway);
}
