//! The OpenAPI 3 document served at `/v1/openapi.json`, built from [`Op::ALL`] so that it lists
//! exactly the routes the router serves.

use serde_json::{json, Map, Value};

use super::guard::BODY_LIMIT;
use super::routes::Op;

fn error_ref(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn operation(op: Op) -> Value {
    let (id, summary, mut responses) = match op {
        Op::Health => (
            "getHealth",
            "Readers, queue and gateway at a glance.",
            json!({"200": json_ok("Health: ok or degraded", "Health"),
                   "503": json_ok("Health: down (a swipe cannot be taken now)", "Health")}),
        ),
        Op::Readers => (
            "listReaders",
            "Attached and configured readers and their state.",
            json!({"200": json_ok("Readers", "Readers")}),
        ),
        Op::ArmCapture => (
            "armCapture",
            "Arms the next swipe on a reader (or any reader); its card data joins these customer fields.",
            json!({
                "202": json_ok("Armed, waiting for a swipe", "Capture"),
                "400": error_ref("A bad field; `error.field` names it"),
                "409": error_ref("Too many captures already waiting for this reader"),
                "422": error_ref("`pin` or `pin_block` refused: `error.code` says why (bad-pin, pin-not-supported, pin-conflict, bad-pin-block, bad-pin-ksn, bad-pin-format), `error.field` names the field"),
                "413": error_ref(&format!("Body over {BODY_LIMIT} bytes")),
            }),
        ),
        Op::GetCapture => (
            "getCapture",
            "A capture's state and, once known, the gateway's outcome.",
            json!({
                "200": json_ok("The capture", "Capture"),
                "404": error_ref("No such capture"),
            }),
        ),
        Op::CancelCapture => (
            "cancelCapture",
            "Cancels a capture that has no swipe yet.",
            json!({
                "200": json_ok("Cancelled", "Capture"),
                "404": error_ref("No such capture"),
                "409": error_ref("Already finished, or a swipe is being processed"),
            }),
        ),
        Op::Events => (
            "streamEvents",
            "Server-Sent Events: reader-attached, reader-detached, swipe, saved, queued, failed, reader-prompt (a driven reader's own prompt) (card data masked).",
            json!({"200": {
                "description": "An event stream; `event:` is the kind, `data:` a LaneEvent",
                "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/LaneEvent"}}}
            }}),
        ),
        Op::Queue => (
            "getQueue",
            "What the durable queue holds (masked PANs only).",
            json!({"200": json_ok("The queue", "Queue")}),
        ),
        Op::Metrics => (
            "getMetrics",
            "Prometheus text exposition, names prefixed `cardlane_`.",
            json!({"200": {
                "description": "Metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}}
            }}),
        ),
        Op::OpenApi => (
            "getOpenApi",
            "This document.",
            json!({"200": {
                "description": "OpenAPI 3 document",
                "content": {"application/json": {"schema": {"type": "object"}}}
            }}),
        ),
        Op::EventsTicket => (
            "createEventsTicket",
            "A single-use ticket, valid 30 s, that opens one event stream as `GET /v1/events?ticket=…` (a browser's EventSource cannot send the bearer token).",
            json!({"200": json_ok("The ticket", "EventsTicket")}),
        ),
        Op::QueueFlush => (
            "flushQueue",
            "Sends every record the queue holds once now, whatever its backoff says.",
            json!({
                "200": json_ok("What the flush did", "FlushReport"),
                "503": error_ref("The queue cannot be read"),
            }),
        ),
        Op::Reads => (
            "listReads",
            "The last 20 reads and their outcomes, newest first (card data masked).",
            json!({"200": json_ok("Reads", "Reads")}),
        ),
        Op::ConsoleCode => (
            "createConsoleCode",
            "A one-time console sign-in code, valid 60 s (bearer token only: `cardlane console-url` prints it as a URL).",
            json!({"200": json_ok("The code and the sign-in path", "ConsoleCode")}),
        ),
    };
    if let Some(r) = responses.as_object_mut() {
        r.insert("401".into(), error_ref("Missing or wrong bearer token"));
    }
    let mut o = json!({"operationId": id, "summary": summary, "responses": responses});
    if let Some(obj) = o.as_object_mut() {
        if matches!(op, Op::GetCapture | Op::CancelCapture) {
            obj.insert(
                "parameters".into(),
                json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]),
            );
        }
        if op == Op::Events {
            obj.insert(
                "parameters".into(),
                json!([{"name": "ticket", "in": "query", "required": false, "schema": {"type": "string"},
                    "description": "From POST /v1/events/ticket, instead of the Authorization header"}]),
            );
        }
        if op == Op::ArmCapture {
            obj.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/CaptureRequest"}}}}),
            );
        }
    }
    o
}

fn schemas() -> Value {
    let nullable_string = json!({"type": "string", "nullable": true});
    json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
        "Reader": {"type": "object", "required": ["id", "device", "state"], "properties": {
            "id": {"type": "string"}, "device": {"type": "string"},
            "profile": nullable_string, "transport": nullable_string,
            "state": {"type": "string", "enum": ["connected", "disconnected", "error", "idle", "waiting-for-card", "waiting-for-pin", "cancelling", "unresponsive"],
                "description": "Listen-only readers: connected, disconnected, error. Driven readers (protocol neo2): idle, waiting-for-card, waiting-for-pin (a keypad reader's PIN entry), cancelling, unresponsive, error, disconnected"},
            "pin_entry": {"type": "boolean", "description": "A keypad reader that takes `\"pin\"` captures (the profile's pin_entry or [[readers]] pin_entry)"},
            "configured": {"type": "boolean"}, "error": nullable_string,
            "protocol": {"type": "string", "nullable": true, "enum": ["none", "neo2", "mms", "magtek-v5", null]},
            "firmware": nullable_string}},
        "Readers": {"type": "object", "properties": {"readers": {"type": "array", "items": {"$ref": "#/components/schemas/Reader"}}}},
        "Health": {"type": "object", "required": ["status", "reasons", "readers", "queue", "gateway"], "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
            "reasons": {"type": "array", "items": {"type": "string"}, "description": "reader-missing:ID, no-reader-connected, no-reader, queue-not-writable, uploader-not-alive, queue-storage-failing, gateway-auth-failed"},
            "readers": {"type": "array", "items": {"$ref": "#/components/schemas/Reader"}},
            "queue": {"type": "object", "properties": {"held": {"type": "integer"}, "oldest_age_s": {"type": "integer"}}},
            "gateway": {"type": "string", "enum": ["reachable", "unreachable", "auth-failed"]}}},
        "CaptureRequest": {"type": "object", "additionalProperties": false, "properties": {
            "reader": {"type": "string", "description": "Reader id or device selector; absent: any reader"},
            "customer": {"type": "object", "description": "Customer API `customer` fields"},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0},
            "interfaces": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["msr", "contact", "contactless"]},
                "description": "A driven reader's transaction for this capture accepts these; absent: all the reader has"},
            "kind": {"type": "string", "enum": ["card", "check"], "description": "check: arms the next check read (MICR reader); default card"},
            "check": {"type": "object", "additionalProperties": false, "description": "With kind check: what a MICR line cannot carry; [lane.check] or the check's type fills what is absent", "properties": {
                "account_type": {"type": "string", "description": "0 checking, 1 saving, 2 business (or the names)"},
                "sec_code": {"type": "string", "description": "0 CCD, 1 PPD, 2 WEB, 3 TEL, 4 BOC, 5 ARC (or the names); the check number is sent only with BOC and ARC"},
                "bank_name": {"type": "string"}}},
            "pin": {"type": "string", "enum": ["required", "optional"],
                "description": "After the read, the reader's keypad takes the PIN (62-01 with the reader's own PAN). Needs `reader` naming a driven reader with pin_entry; not with kind check. required: no PIN, no record (pin-cancelled, pin-timed-out); optional: saved without one. timeout_s covers card and PIN. Sent online only: failed with pin-needs-online when the gateway cannot be reached."},
            "pin_block": {"type": "object", "additionalProperties": false, "required": ["block", "ksn", "format"],
                "description": "A block from the kiosk's own PIN pad for this capture's card read; not with `pin`, not with kind check. Sent online only (pin-needs-online), never queued.",
                "properties": {
                    "block": {"type": "string", "pattern": "^([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$", "description": "Encrypted ISO 9564 block: 16 hex digits for formats 0, 1, 3 (TDES), 32 for format 4 (AES)"},
                    "ksn": {"type": "string", "pattern": "^([0-9A-Fa-f]{20}|[0-9A-Fa-f]{24})$", "description": "The PIN pad key's KSN: 20 hex digits (TDES DUKPT) or 24 (AES DUKPT, required for format 4)"},
                    "format": {"type": "integer", "enum": [0, 1, 3, 4]}}}}},
        "Capture": {"type": "object", "required": ["id", "state"], "properties": {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["waiting", "saved", "queued", "declined", "rejected", "failed", "timed-out", "cancelled"]},
            "reader": nullable_string, "swiped": {"type": "boolean"},
            "customer_id": nullable_string, "token": nullable_string,
            "masked_pan": nullable_string, "error": nullable_string,
            "error_code": {"type": "string", "description": "Why a capture failed or ended: reader-timed-out, reader-declined, reader-error, pin-cancelled, pin-timed-out, pin-error, pin-needs-online, queue-full, …"},
            "pin": {"type": "string", "enum": ["entered", "skipped", "given"], "description": "With pin or pin_block: entered on the reader, skipped (optional, none came), given by the kiosk"}}},
        "Queue": {"type": "object", "properties": {
            "held": {"type": "integer"}, "oldest_age_s": {"type": "integer"},
            "records": {"type": "array", "items": {"type": "object", "properties": {
                "customer_id": {"type": "string"}, "state": {"type": "string"},
                "attempts": {"type": "integer"}, "age_s": {"type": "integer"},
                "last_error": nullable_string, "masked_pan": nullable_string,
                "next_attempt_in_s": {"type": "integer", "description": "Seconds until the next attempt (0: due); absent once failed for good"}}}}}},
        "EventsTicket": {"type": "object", "required": ["ticket", "expires_in_s"], "properties": {
            "ticket": {"type": "string"}, "expires_in_s": {"type": "integer"}}},
        "FlushReport": {"type": "object", "required": ["sent", "failed", "remaining"], "properties": {
            "sent": {"type": "integer"}, "failed": {"type": "integer"}, "remaining": {"type": "integer"}}},
        "Reads": {"type": "object", "properties": {"reads": {"type": "array", "items": {"$ref": "#/components/schemas/LaneEvent"}}}},
        "ConsoleCode": {"type": "object", "required": ["code", "path", "expires_in_s"], "properties": {
            "code": {"type": "string"}, "path": {"type": "string"}, "expires_in_s": {"type": "integer"}}},
        "LaneEvent": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["reader-attached", "reader-detached", "swipe", "saved", "queued", "failed", "reader-prompt"]},
            "text": {"type": "string", "description": "reader-prompt: the reader's own prompt, e.g. PRESENT CARD"},
            "reader": nullable_string, "masked_pan": nullable_string, "last4": nullable_string,
            "capture_id": nullable_string, "customer_id": nullable_string}}
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in Op::ALL {
        let entry = paths
            .entry(op.path())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(op.method().as_str().to_ascii_lowercase(), operation(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "cardlane local API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The agent's API for kiosks and supervisors. Every route needs `Authorization: Bearer <token>` (the token file named by `api.token_file`)."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ref_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "{name}");
        }
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
