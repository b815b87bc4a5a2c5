//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages ended by NUL, Chromium reading fd 3 and writing fd 4). The two descriptors
//! are FIFOs the shell opens for it, so no extra crate and no unsafe code is needed.
//!
//! Every wait has a generous time-out that fails the test; a missing `chromium` fails it too
//! (CI installs the package, see `.ci/run`), it never skips.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(30);

/// The flags the machine's notes give for headless Chromium here (no sandbox as root, no
/// background connections to Google that a closed network refuses).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
];

pub struct Browser {
    child: Child,
    to: File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    _dir: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser binary: `CHROMIUM` if set, else `chromium` on the PATH.
fn binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

impl Browser {
    pub fn launch() -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in"), dir.path().join("out"));
        for fifo in [&input, &output] {
            let st = Command::new("mkfifo").arg(fifo).status().unwrap();
            assert!(st.success(), "mkfifo {}", fifo.display());
        }
        let bin = binary();
        let found = Command::new("sh")
            .args(["-c", "command -v \"$1\"", "sh", &bin])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            found.success(),
            "`{bin}` not found: install Debian's chromium package (apt-get install -y chromium), \
             as .ci/run does; the browser tests do not skip"
        );
        let profile = dir.path().join("profile");
        let child = Command::new("sh")
            .args([
                "-c",
                "in=$1; out=$2; shift 2; exec \"$@\" 3<\"$in\" 4>\"$out\"",
                "sh",
            ])
            .arg(&input)
            .arg(&output)
            .arg(&bin)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The shell opens fd 3 first (it waits for this writer), then fd 4 (for this reader).
        let to = open_within(&input, true);
        let from_file = open_within(&output, false);
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(from_file);
            loop {
                let mut buf = Vec::new();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                let Ok(v) = serde_json::from_slice::<Value>(&buf) else {
                    continue;
                };
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Browser {
            child,
            to,
            from,
            next_id: 1,
            _dir: dir,
        }
    }

    /// Sends a command (to a page's session, or to the browser) and returns its result.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer to {method} within {WAIT:?}: {e}"));
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// A new tab, attached: its session id.
    pub fn new_page(&mut self) -> String {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().unwrap().to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        let session = attached["sessionId"].as_str().unwrap().to_string();
        self.call(Some(&session), "Page.enable", json!({}));
        self.call(Some(&session), "Runtime.enable", json!({}));
        session
    }

    /// Viewport size for the page (CSS pixels, scale 1).
    pub fn viewport(&mut self, page: &str, width: u32, height: u32) {
        self.call(
            Some(page),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
    }

    /// Navigates and waits for the document to be loaded.
    pub fn goto(&mut self, page: &str, url: &str) {
        let r = self.call(Some(page), "Page.navigate", json!({"url": url}));
        assert!(
            r.get("errorText").is_none(),
            "navigating to {url}: {}",
            r["errorText"]
        );
        self.wait_for(
            page,
            "the page loaded",
            "document.readyState === 'complete'",
        );
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, page: &str, expr: &str) -> Value {
        let r = self.call(
            Some(page),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is true; fails after `WAIT` showing the page's text.
    pub fn wait_for(&mut self, page: &str, what: &str, expr: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.eval(page, expr) == json!(true) {
                return;
            }
            if Instant::now() >= deadline {
                let text = self.eval(page, "document.body ? document.body.innerText : ''");
                panic!("waited {WAIT:?} for {what}; the page shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG of the page's viewport.
    pub fn screenshot(&mut self, page: &str) -> Vec<u8> {
        let r = self.call(
            Some(page),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        );
        base64_decode(r["data"].as_str().unwrap())
    }
}

/// Opens a FIFO, failing (not hanging) if the other side never comes.
fn open_within(path: &Path, write: bool) -> File {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let f = if write {
            std::fs::OpenOptions::new().write(true).open(&p)
        } else {
            File::open(&p)
        };
        let _ = tx.send(f);
    });
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("chromium did not open its pipe within {WAIT:?}"))
        .unwrap()
}

/// Standard base64 (RFC 4648), as DevTools returns screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for quad in clean.chunks(4) {
        let data: Vec<u8> = quad.iter().copied().filter(|&b| b != b'=').collect();
        let mut acc = 0u32;
        for (i, &c) in data.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

/// Width and height from a PNG's IHDR chunk (bytes 16-23).
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn base64_of_rfc4648_examples() {
    // RFC 4648 section 10.
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_decode(coded), plain.as_bytes(), "{coded}");
    }
}
