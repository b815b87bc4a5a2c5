//! The OpenAPI 3.1 document served at `/v1/openapi.json`, built from [`Op::ALL`] so that it lists
//! exactly the routes the router serves. Schemas are JSON Schema 2020-12 (what 3.1 uses):
//! nullable is `"type": ["string", "null"]`, `exclusiveMinimum` a number.
//!
//! A route is an [`Op`] variant and an arm of [`operation`]; a schema is an entry of [`SCHEMAS`].
//! Request schemas state every rule the handlers enforce (and refuse unknown fields); a
//! well-formed request the agent cannot act on now (no such reader, no keypad, too many
//! captures) answers 409, so 400 and 422 always mean "the document forbids this".

use serde_json::{json, Map, Value};

use super::guard::BODY_LIMIT;
use super::routes::Op;
use super::ApiSettings;
use crate::gateway::check_record::{ACCOUNT_TYPE_NAMES, SEC_CODE_NAMES};

/// Builds one schema. Builders see the settings because some limits (`timeout_s`'s maximum)
/// come from the configuration.
type Build = fn(&ApiSettings) -> Value;

/// `components/schemas`: name and builder.
const SCHEMAS: &[(&str, Build)] = &[
    ("Error", error),
    ("Reader", reader),
    ("Readers", |_| list_of("readers", "Reader")),
    ("Health", health),
    ("CaptureRequest", capture_request),
    ("Customer", customer),
    ("CheckDetails", check_details),
    ("KioskPinBlock", kiosk_pin_block),
    ("Capture", capture),
    ("Queue", queue),
    ("QueueRecord", queue_record),
    ("EventsTicket", |_| {
        object(&[("ticket", string()), ("expires_in_s", count())], &[])
    }),
    ("FlushReport", |_| {
        object(
            &[
                ("sent", count()),
                ("failed", count()),
                ("remaining", count()),
            ],
            &[],
        )
    }),
    ("Reads", |_| list_of("reads", "LaneEvent")),
    ("ConsoleCode", |_| {
        object(
            &[
                ("code", string()),
                ("path", string()),
                ("expires_in_s", count()),
            ],
            &[],
        )
    }),
    ("ConsoleSignIn", console_sign_in),
    ("LaneEvent", lane_event),
];

/// Every `error.code` the API answers with.
pub const ERROR_CODES: &[&str] = &[
    "unauthorized",
    "body-too-large",
    "no-route",
    "bad-json",
    "bad-body",
    "bad-field",
    "internal",
    "unknown-reader",
    "unknown-capture",
    "capture-limit",
    "capture-finished",
    "capture-swiped",
    "capture-not-swiped",
    "bad-outcome",
    "bad-pin",
    "bad-pin-block",
    "bad-pin-ksn",
    "bad-pin-format",
    "pin-conflict",
    "pin-not-supported",
    "too-many-event-streams",
    "flush-failed",
    "cross-origin",
    "signin-refused",
];

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

fn count() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An object whose `required` fields are always present and `optional` ones sometimes.
fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for (name, schema) in required.iter().chain(optional) {
        props.insert((*name).to_string(), schema.clone());
    }
    let names: Vec<&str> = required.iter().map(|(n, _)| *n).collect();
    json!({"type": "object", "required": names, "properties": props})
}

fn list_of(key: &str, item: &str) -> Value {
    object(
        &[(key, json!({"type": "array", "items": schema_ref(item)}))],
        &[],
    )
}

fn error(_: &ApiSettings) -> Value {
    let detail = object(
        &[
            ("code", json!({"type": "string", "enum": ERROR_CODES})),
            ("message", string()),
        ],
        &[(
            "field",
            json!({"type": "string", "description": "The request field at fault (e.g. `timeout_s`, `zip`, `pin_block.ksn`)"}),
        )],
    );
    let mut e = object(&[("error", detail)], &[]);
    e["description"] = json!("Every error body: a stable reason code, a message for people (never the request's own values), and the field at fault when there is one.");
    e
}

fn reader(_: &ApiSettings) -> Value {
    object(
        &[
            ("id", string()),
            ("device", string()),
            ("profile", nullable_string()),
            ("transport", nullable_string()),
            (
                "state",
                json!({"type": "string",
                "enum": ["connected", "disconnected", "error", "idle", "waiting-for-card", "waiting-for-pin", "cancelling", "unresponsive"],
                "description": "Listen-only readers: connected, disconnected, error. Driven readers: idle, waiting-for-card, waiting-for-pin (a keypad reader's PIN entry), cancelling, unresponsive, error, disconnected"}),
            ),
            ("configured", json!({"type": "boolean"})),
            ("error", nullable_string()),
            (
                "protocol",
                json!({"type": ["string", "null"], "enum": ["none", "neo2", "mms", "magtek-v5", null]}),
            ),
            ("firmware", nullable_string()),
            (
                "pin_entry",
                json!({"type": "boolean",
                "description": "A keypad reader that takes `\"pin\"` captures (the profile's pin_entry or [[readers]] pin_entry)"}),
            ),
        ],
        &[],
    )
}

fn health(_: &ApiSettings) -> Value {
    object(
        &[
            (
                "status",
                json!({"type": "string", "enum": ["ok", "degraded", "down"]}),
            ),
            (
                "reasons",
                json!({"type": "array", "items": {"type": "string"},
                "description": "reader-missing:ID, no-reader-connected, no-reader, queue-not-writable, uploader-not-alive, queue-storage-failing, gateway-auth-failed"}),
            ),
            (
                "readers",
                json!({"type": "array", "items": schema_ref("Reader")}),
            ),
            (
                "queue",
                object(&[("held", count()), ("oldest_age_s", count())], &[]),
            ),
            (
                "gateway",
                json!({"type": "string", "enum": ["reachable", "unreachable", "auth-failed"]}),
            ),
        ],
        &[],
    )
}

/// A capture's `reader`: one the agent knows when it serves the document (readers come and go
/// with hot-plug, so a later request may name one the document did not list, or no longer).
/// With none known, no value is valid: the field must be left out.
fn reader_schema(readers: &[String]) -> Value {
    let what = "Reader id or device selector, as GET /v1/readers lists them when this document was served; absent: any reader. One the agent does not know (any more) answers 400 unknown-reader";
    if readers.is_empty() {
        return json!({"not": {}, "description": what});
    }
    json!({"type": "string", "enum": readers, "description": what})
}

/// `POST /v1/captures`. Absent fields take their defaults; `null` is not a value here.
fn capture_request(s: &ApiSettings) -> Value {
    let max = s.max_capture_timeout.as_secs_f64();
    let default = s.default_capture_timeout.as_secs_f64();
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "reader": reader_schema(&[]),
            "customer": schema_ref("Customer"),
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": max,
                "description": format!("Seconds the capture waits for its read (and PIN); absent: {default}")},
            "interfaces": {"type": "array", "minItems": 1,
                "items": {"type": "string", "enum": ["msr", "contact", "contactless"]},
                "description": "A driven reader's transaction for this capture accepts these; absent: all the reader has"},
            "kind": {"type": "string", "enum": ["card", "check"], "description": "check: arms the next check read (MICR reader); absent: card"},
            "check": schema_ref("CheckDetails"),
            "pin": {"type": "string", "enum": ["required", "optional"],
                "description": "After the read, the reader's keypad takes the PIN. Needs `reader` naming a driven reader with pin_entry (else 409 pin-not-supported); not with kind check. required: no PIN, no record (pin-cancelled, pin-timed-out); optional: saved without one. Sent online only: failed with pin-needs-online when the gateway cannot be reached."},
            "pin_block": schema_ref("KioskPinBlock")
        },
        "allOf": [
            {"not": {"required": ["pin", "pin_block"]}, "description": "`pin` (the reader's keypad) or `pin_block` (the kiosk's PIN pad), not both"},
            {"if": {"required": ["pin"]}, "then": {"required": ["reader"]}},
            {"if": {"required": ["kind"], "properties": {"kind": {"const": "check"}}},
             "then": {"properties": {"pin": false, "pin_block": false}},
             "else": {"properties": {"check": false}},
             "description": "`check` only with kind check; a check takes no PIN"}
        ]
    })
}

/// Free text of at most `max` characters, or null (absent).
fn text(max: usize) -> Value {
    json!({"type": ["string", "null"], "maxLength": max})
}

/// Digits as a string (`""`: absent) or a JSON number of as many digits.
fn digits(pattern: &str, numbers: &[(u64, u64)], description: &str) -> Value {
    let mut any = vec![
        json!({"type": "string", "pattern": pattern}),
        json!({"type": "null"}),
    ];
    for (lo, hi) in numbers {
        any.push(json!({"type": "integer", "minimum": lo, "maximum": hi}));
    }
    json!({"anyOf": any, "description": description})
}

/// What the email rule treats as a space (Unicode White_Space), spelled out so that every
/// regex engine reads the same set.
const SPACES: &str = "\t\n\u{b}\u{c}\r \u{85}\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}";

/// The Customer API `customer` object as the agent checks it (customer-api.md). `""` or null
/// counts as absent.
fn customer(_: &ApiSettings) -> Value {
    let part = format!("[^@{SPACES}]+");
    let label = format!("[^@.{SPACES}]+");
    let email = format!("^({part}@{label}(\\.{label})+)?$");
    let mut props = Map::new();
    props.insert(
        "customer_id".into(),
        json!({"type": ["string", "null"], "pattern": "^(AUTO|[A-Za-z0-9_-]{1,50})?$",
            "description": "Absent: the agent picks one per read"}),
    );
    for name in [
        "first_name",
        "last_name",
        "street_1",
        "street_2",
        "city",
        "state",
        "country",
        "company",
    ] {
        props.insert(name.into(), text(50));
    }
    props.insert(
        "zip".into(),
        digits(
            "^([0-9]{5}|[0-9]{9})?$",
            &[(10_000, 99_999), (100_000_000, 999_999_999)],
            "5 or 9 digits",
        ),
    );
    props.insert(
        "phone_number".into(),
        digits(
            "^([0-9]{10})?$",
            &[(1_000_000_000, 9_999_999_999)],
            "10 digits",
        ),
    );
    props.insert(
        "email".into(),
        json!({"type": ["string", "null"], "maxLength": 255, "pattern": email}),
    );
    props.insert(
        "email_receipt".into(),
        digits("^[01]?$", &[(0, 1)], "1: email a receipt, 0: do not"),
    );
    props.insert("notes".into(), text(255));
    props.insert(
        "action_code".into(),
        json!({"anyOf": [{"type": "string", "const": "1"}, {"type": "integer", "const": 1}, {"type": "null"}],
            "description": "Only 1 (add or update): every capture is saved as an upsert, so a retry is safe"}),
    );
    json!({"type": "object", "additionalProperties": false, "properties": props,
        "description": "Customer API `customer` fields; the read's card data joins them"})
}

fn check_details(_: &ApiSettings) -> Value {
    json!({
        "type": "object", "additionalProperties": false,
        "description": "With kind check: what a MICR line cannot carry; [lane.check] or the check's type fills what is absent",
        "properties": {
            "account_type": {"anyOf": [
                {"type": "string", "enum": ACCOUNT_TYPE_NAMES},
                {"type": "integer", "minimum": 0, "maximum": 2}],
                "description": "0 checking, 1 saving, 2 business"},
            "sec_code": {"anyOf": [
                {"type": "string", "enum": SEC_CODE_NAMES},
                {"type": "integer", "minimum": 0, "maximum": 5}],
                "description": "0 CCD, 1 PPD, 2 WEB, 3 TEL, 4 BOC, 5 ARC; the check number is sent only with BOC and ARC"},
            "bank_name": {"type": "string", "maxLength": 100}
        }
    })
}

fn kiosk_pin_block(_: &ApiSettings) -> Value {
    let hex = |n: usize| format!("^[0-9A-Fa-f]{{{n}}}$");
    let tdes_ksn = "^([0-9A-Fa-f]{20}|[0-9A-Fa-f]{24})$";
    json!({
        "type": "object",
        "description": "A block from the kiosk's own PIN pad for this capture's card read; not with `pin`, not with kind check. Sent online only (pin-needs-online), never queued. Refusals are 422 with bad-pin-block, bad-pin-ksn or bad-pin-format.",
        "required": ["block", "ksn", "format"],
        "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["block", "ksn", "format"], "properties": {
                "format": {"type": "integer", "enum": [0, 1, 3], "description": "ISO 9564 format 0, 1 or 3 (TDES)"},
                "block": {"type": "string", "pattern": hex(16), "description": "The encrypted block, 16 hex digits"},
                "ksn": {"type": "string", "pattern": tdes_ksn, "description": "The PIN pad key's KSN: 20 hex digits (TDES DUKPT) or 24 (AES DUKPT)"}}},
            {"type": "object", "additionalProperties": false, "required": ["block", "ksn", "format"], "properties": {
                "format": {"type": "integer", "const": 4, "description": "ISO 9564 format 4 (AES)"},
                "block": {"type": "string", "pattern": hex(32), "description": "The encrypted block, 32 hex digits"},
                "ksn": {"type": "string", "pattern": hex(24), "description": "An AES DUKPT KSN, 24 hex digits"}}}
        ]
    })
}

fn capture(_: &ApiSettings) -> Value {
    object(
        &[
            ("id", string()),
            (
                "state",
                json!({"type": "string", "enum": ["waiting", "saved", "queued", "declined", "rejected", "failed", "timed-out", "cancelled"],
                "description": "waiting (for its read, or for the PIN after it), then the outcome; queued may still become saved"}),
            ),
            ("reader", nullable_string()),
            ("swiped", json!({"type": "boolean"})),
            ("customer_id", nullable_string()),
            ("token", nullable_string()),
            ("masked_pan", nullable_string()),
            ("error", nullable_string()),
        ],
        &[
            (
                "error_code",
                json!({"type": "string", "description": "Why a capture failed or ended: reader-timed-out, reader-declined, reader-error, pin-cancelled, pin-timed-out, pin-error, pin-needs-online, queue-full, …"}),
            ),
            (
                "pin",
                json!({"type": "string", "enum": ["entered", "skipped", "given"], "description": "With pin or pin_block: entered on the reader, skipped (optional, none came), given by the kiosk"}),
            ),
            (
                "masked_account",
                json!({"type": ["string", "null"], "description": "A check capture's bank account, masked to its last 4"}),
            ),
        ],
    )
}

fn queue(_: &ApiSettings) -> Value {
    object(
        &[
            ("held", count()),
            ("oldest_age_s", count()),
            (
                "records",
                json!({"type": "array", "items": schema_ref("QueueRecord")}),
            ),
        ],
        &[],
    )
}

fn queue_record(_: &ApiSettings) -> Value {
    object(
        &[
            ("customer_id", string()),
            ("state", string()),
            ("attempts", count()),
            ("age_s", count()),
            ("last_error", nullable_string()),
            ("masked_pan", nullable_string()),
        ],
        &[
            (
                "masked_account",
                json!({"type": ["string", "null"], "description": "A check's account number masked to its last 4"}),
            ),
            (
                "next_attempt_in_s",
                json!({"type": "integer", "minimum": 0, "description": "Seconds until the next attempt (0: due); absent once failed for good"}),
            ),
        ],
    )
}

fn console_sign_in(_: &ApiSettings) -> Value {
    let one = |key: &str, what: &str| {
        json!({"type": "object", "additionalProperties": false, "required": [key],
            "properties": {key: {"type": "string", "description": what}}})
    };
    json!({"oneOf": [
        one("code", "A one-time code from POST /v1/console/code (`cardlane console-url`)"),
        one("token", "The API token")
    ]})
}

/// A field of a lane event: always present (maybe null), or only in newer agents.
enum Field {
    Text,
    Nullable,
    Last4,
    Later,
}

/// The `type` of each lane event and its fields (src/agent/events.rs).
const EVENTS: &[(&str, &[(&str, Field)])] = {
    use Field::*;
    &[
        (
            "reader-attached",
            &[
                ("reader", Text),
                ("profile", Nullable),
                ("transport", Nullable),
            ],
        ),
        ("reader-detached", &[("reader", Text), ("reason", Nullable)]),
        (
            "swipe",
            &[
                ("reader", Text),
                ("format", Nullable),
                ("entry_mode", Nullable),
                ("masked_pan", Nullable),
                ("last4", Last4),
                ("capture_id", Nullable),
                ("error_code", Nullable),
                ("masked_account", Later),
            ],
        ),
        ("swipe-unreadable", &[("reader", Text), ("code", Text)]),
        (
            "saved",
            &[
                ("reader", Nullable),
                ("capture_id", Nullable),
                ("customer_id", Text),
                ("token", Nullable),
                ("masked_pan", Nullable),
                ("last4", Last4),
                ("masked_account", Later),
            ],
        ),
        (
            "queued",
            &[
                ("reader", Nullable),
                ("capture_id", Nullable),
                ("customer_id", Text),
                ("masked_pan", Nullable),
                ("last4", Last4),
                ("masked_account", Later),
            ],
        ),
        ("reader-prompt", &[("reader", Text), ("text", Text)]),
        (
            "failed",
            &[
                ("reader", Nullable),
                ("capture_id", Nullable),
                ("customer_id", Nullable),
                ("code", Text),
                ("error", Text),
                ("masked_pan", Nullable),
                ("last4", Last4),
                ("masked_account", Later),
            ],
        ),
    ]
};

fn lane_event(_: &ApiSettings) -> Value {
    let variants: Vec<Value> = EVENTS
        .iter()
        .map(|(kind, fields)| {
            let mut required = vec![("type", json!({"type": "string", "const": kind}))];
            let mut optional = Vec::new();
            for (name, f) in fields.iter() {
                match f {
                    Field::Text => required.push((*name, string())),
                    Field::Nullable => required.push((*name, nullable_string())),
                    Field::Last4 => {
                        required.push((*name, json!({"type": ["string", "null"], "maxLength": 4})))
                    }
                    Field::Later => optional.push((*name, nullable_string())),
                }
            }
            object(&required, &optional)
        })
        .collect();
    json!({"oneOf": variants,
        "description": "One lane event; `type` is also the SSE `event:` name. Card data is masked (first 6 and last 4 at most)."})
}

/// A response of one status.
enum Answer {
    /// JSON of a named schema.
    Json(&'static str),
    /// The `Error` schema.
    Error,
    /// A body of this media type, any text.
    Text(&'static str),
    /// A JSON object of no fixed schema (this document).
    AnyJson,
    /// No body.
    Empty,
}

/// What [`operation`] says of one route.
struct OpDoc {
    id: &'static str,
    summary: &'static str,
    /// Served without the token (the console's own files and sign-in).
    public: bool,
    request: Option<&'static str>,
    responses: Vec<(u16, String, Answer)>,
}

impl OpDoc {
    fn new(id: &'static str, summary: &'static str) -> OpDoc {
        OpDoc {
            id,
            summary,
            public: false,
            request: None,
            responses: Vec::new(),
        }
    }
    fn answer(mut self, status: u16, description: impl Into<String>, a: Answer) -> OpDoc {
        self.responses.push((status, description.into(), a));
        self
    }
    fn ok(self, description: &str, schema: &'static str) -> OpDoc {
        self.answer(200, description, Answer::Json(schema))
    }
    fn err(self, status: u16, description: impl Into<String>) -> OpDoc {
        self.answer(status, description, Answer::Error)
    }
    fn body(mut self, schema: &'static str) -> OpDoc {
        self.request = Some(schema);
        self.err(
            413,
            format!("Body over {BODY_LIMIT} bytes (body-too-large)"),
        )
    }
    fn public(mut self) -> OpDoc {
        self.public = true;
        self
    }
}

fn operation(op: Op) -> OpDoc {
    use Answer::*;
    let d = OpDoc::new;
    match op {
        Op::Health => d("getHealth", "Readers, queue and gateway at a glance.")
            .ok("Health: ok or degraded", "Health")
            .answer(503, "Health: down (a read cannot be taken now)", Json("Health")),
        Op::Readers => d("listReaders", "Attached and configured readers and their state.")
            .ok("Readers", "Readers"),
        Op::ArmCapture => d("armCapture", "Arms the next read on a reader (or any reader); its card data joins these customer fields. The capture is at the Location header's path.")
            .body("CaptureRequest")
            .answer(202, "Armed, waiting for a read", Json("Capture"))
            .err(400, "The body breaks the schema (bad-json, bad-field, unknown-reader); `error.field` names the field")
            .err(409, "Well-formed but not possible now: pin-not-supported (the reader has no keypad), capture-limit (too many captures waiting for this reader)")
            .err(422, "`pin` or `pin_block` breaks the schema: bad-pin, bad-pin-block, bad-pin-ksn, bad-pin-format, pin-conflict, pin-not-supported (a check takes no PIN); `error.field` names the field"),
        Op::GetCapture => d("getCapture", "A capture's state and, once known, the gateway's outcome; also found by its record's customer_id.")
            .ok("The capture", "Capture")
            .err(404, "No such capture (unknown-capture)"),
        Op::CancelCapture => d("cancelCapture", "Cancels a capture that has no read yet. This is not a delete: the capture stays readable at GET /v1/captures/{id}, in state cancelled.")
            .ok("Cancelled", "Capture")
            .err(404, "No such capture (unknown-capture)")
            .err(409, "Already finished (capture-finished) or a read is being processed (capture-swiped)"),
        Op::Events => d("streamEvents", "Server-Sent Events, one per lane event: reader-attached, reader-detached, reader-prompt, swipe, swipe-unreadable, saved, queued, failed (card data masked). The stream stays open.")
            .answer(200, "An event stream; each `event:` is the kind, its `data:` a LaneEvent", Text("text/event-stream"))
            .err(503, "Too many event streams open (too-many-event-streams)"),
        Op::Queue => d("getQueue", "What the durable queue holds (masked PANs only).")
            .ok("The queue", "Queue"),
        Op::Metrics => d("getMetrics", "Prometheus text exposition, names prefixed `cardlane_`.")
            .answer(200, "Metrics", Text("text/plain")),
        Op::OpenApi => d("getOpenApi", "This document.")
            .answer(200, "OpenAPI 3.1 document", AnyJson),
        Op::EventsTicket => d("createEventsTicket", "A single-use ticket, valid 30 s, that opens one event stream as `GET /v1/events?ticket=…` (a browser's EventSource cannot send the bearer token).")
            .ok("The ticket", "EventsTicket"),
        Op::QueueFlush => d("flushQueue", "Sends every record the queue holds once now, whatever its backoff says.")
            .ok("What the flush did", "FlushReport")
            .err(503, "The queue cannot be read (flush-failed)"),
        Op::Reads => d("listReads", "The last 20 reads and their outcomes, newest first (card data masked).")
            .ok("Reads", "Reads"),
        Op::ConsoleCode => d("createConsoleCode", "A one-time console sign-in code, valid 60 s (bearer token only, not a console session: `cardlane console-url` prints it as a URL).")
            .ok("The code and the sign-in path", "ConsoleCode"),
        Op::ConsolePage => d("getConsole", "The console's page (needs no token; it signs in and then calls this API).")
            .public()
            .answer(200, "The page", Text("text/html")),
        Op::ConsoleSignInPage => d("getConsoleSignIn", "The console's page at the sign-in URL `cardlane console-url` prints; it exchanges its `?code=` for a session.")
            .public()
            .answer(200, "The page", Text("text/html")),
        Op::ConsoleScript => d("getConsoleScript", "The console's script.")
            .public()
            .answer(200, "The script", Text("text/javascript")),
        Op::ConsoleStyle => d("getConsoleStyle", "The console's style sheet.")
            .public()
            .answer(200, "The style sheet", Text("text/css")),
        Op::ConsoleSession => d("createConsoleSession", "Exchanges a one-time code or the API token for a console session: an HttpOnly, SameSite=Strict cookie `cardlane_session`. From the console's own page only.")
            .public()
            .body("ConsoleSignIn")
            .answer(204, "Signed in: the session cookie is set", Empty)
            .err(400, "Neither `code` nor `token` (bad-field)")
            .err(401, "The code is unknown, used or expired, or the token is wrong (signin-refused)")
            .err(403, "Not from the console's own page (cross-origin)"),
        Op::ConsoleSignOut => d("deleteConsoleSession", "Ends the console session and clears its cookie.")
            .public()
            .answer(204, "Signed out", Empty)
            .err(403, "Not from the console's own page (cross-origin)"),
    }
}

fn response(description: &str, answer: &Answer) -> Value {
    let content = |media: &str, schema: Value| json!({media: {"schema": schema}});
    let body = match answer {
        Answer::Json(name) => Some(content("application/json", schema_ref(name))),
        Answer::Error => Some(content("application/json", schema_ref("Error"))),
        Answer::Text(media) => Some(content(media, string())),
        Answer::AnyJson => Some(content("application/json", json!({"type": "object"}))),
        Answer::Empty => None,
    };
    let mut r = json!({ "description": description });
    if let Some(b) = body {
        r["content"] = b;
    }
    r
}

fn operation_object(op: Op) -> Value {
    let doc = operation(op);
    let mut responses = Map::new();
    for (status, description, answer) in &doc.responses {
        responses.insert(status.to_string(), response(description, answer));
    }
    let mut o = json!({"operationId": doc.id, "summary": doc.summary});
    if doc.public {
        o["security"] = json!([]);
    } else {
        responses.entry("401").or_insert_with(|| {
            response(
                "Missing or wrong bearer token (unauthorized)",
                &Answer::Error,
            )
        });
    }
    o["responses"] = Value::Object(responses);
    if let Some(schema) = doc.request {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(schema)}}});
    }
    match op {
        Op::GetCapture | Op::CancelCapture => {
            o["parameters"] = json!([{"name": "id", "in": "path", "required": true,
                "schema": {"type": "string"}, "description": "The capture's id, or its record's customer_id"}]);
        }
        Op::Events => {
            o["parameters"] = json!([{"name": "ticket", "in": "query", "required": false, "schema": {"type": "string"},
                "description": "From POST /v1/events/ticket, instead of the Authorization header"}]);
        }
        _ => {}
    }
    o
}

/// The whole document, with the limits `settings` put on requests and `readers` (ids and device
/// selectors of the readers the agent knows now) as the only values `reader` may take.
pub fn document(settings: &ApiSettings, readers: &[String]) -> Value {
    let mut paths = Map::new();
    for op in Op::ALL {
        let entry = paths
            .entry(op.path())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method().as_str().to_ascii_lowercase()] = operation_object(op);
    }
    if settings.health_down_status != 503 {
        // Down is reported in the body with 200 (`[api] health_down_status`).
        if let Some(r) = paths["/v1/health"]["get"]["responses"].as_object_mut() {
            r.remove("503");
            r.insert(
                "200".into(),
                json!({"description": "Health: ok, degraded or down (`[api] health_down_status = 503` answers down with 503)",
                    "content": {"application/json": {"schema": schema_ref("Health")}}}),
            );
        }
    }
    let mut schemas: Map<String, Value> = SCHEMAS
        .iter()
        .map(|(name, build)| ((*name).to_string(), build(settings)))
        .collect();
    if let Some(props) = schemas
        .get_mut("CaptureRequest")
        .and_then(|r| r.get_mut("properties"))
    {
        props["reader"] = reader_schema(readers);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cardlane local API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The agent's API for kiosks and supervisors. Every route but the console's own files and sign-in needs `Authorization: Bearer <token>` (the token file named by `api.token_file`). Request bodies are at most 64 KiB. 400 and 422 mean the request breaks this document; 409, that the agent cannot do it now."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ref_resolves_and_every_schema_is_used() {
        let doc = document(&ApiSettings::default(), &[]);
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut used = std::collections::BTreeSet::new();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "{name}");
            used.insert(name);
        }
        for name in schemas.keys() {
            assert!(used.contains(name), "{name} is never used");
        }
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn the_timeout_limit_follows_the_settings() {
        let s = ApiSettings {
            max_capture_timeout: std::time::Duration::from_secs(90),
            ..ApiSettings::default()
        };
        let doc = document(&s, &[]);
        let t = &doc["components"]["schemas"]["CaptureRequest"]["properties"]["timeout_s"];
        assert_eq!(t["maximum"], 90.0);
        assert_eq!(t["exclusiveMinimum"], 0);
    }

    #[test]
    fn health_lists_503_only_when_down_answers_503() {
        let health = |down: u16| {
            let s = ApiSettings {
                health_down_status: down,
                ..ApiSettings::default()
            };
            document(&s, &[])["paths"]["/v1/health"]["get"]["responses"].clone()
        };
        assert!(health(200).get("503").is_none());
        assert!(health(503).get("503").is_some());
        assert!(health(200)["200"]["description"]
            .as_str()
            .unwrap()
            .contains("down"));
    }

    #[test]
    fn the_reader_field_lists_the_known_readers() {
        let doc = document(&ApiSettings::default(), &["front".into(), "stdin".into()]);
        let r = &doc["components"]["schemas"]["CaptureRequest"]["properties"]["reader"];
        assert_eq!(r["enum"], json!(["front", "stdin"]));
        let none = document(&ApiSettings::default(), &[]);
        let r = &none["components"]["schemas"]["CaptureRequest"]["properties"]["reader"];
        assert_eq!(r["not"], json!({}));
    }
}
