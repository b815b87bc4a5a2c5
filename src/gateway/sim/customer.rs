//! What `POST /Customer` does once the request is authenticated and parsed: validation, card
//! reading, the four action codes, and the reply. Sans-HTTP so it can be tested directly.
use std::sync::Arc;

use super::reader::{brand_of, Bdk, CardFacts, CardReader, ReadContext};
use super::spec_rules;
use super::store::{self, Store, StoreError, StoredCard, StoredCustomer};
use crate::gateway::record::{
    CustomerFields, CustomerReply, CustomerRequest, CustomerResponse, RESULT_APPROVED,
    RESULT_DECLINED, RESULT_ERROR,
};
use crate::gateway::validate::parse_action_code;

/// `result_text` is at most 100 characters (customer-api.md).
const RESULT_TEXT_MAX: usize = 100;

pub struct Core {
    pub store: Store,
    pub reader: Arc<dyn CardReader>,
    pub bdks: Vec<Bdk>,
}

/// What a request did, for the log line: no card data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub customer_id: String,
    pub action: u8,
    pub result_code: u8,
}

pub fn process(core: &Core, req: &CustomerRequest) -> Result<(CustomerReply, Summary), StoreError> {
    let sent_id = req.customer.customer_id.clone().unwrap_or_default();
    let action = req
        .customer
        .action_code
        .as_deref()
        .and_then(parse_action_code)
        // Absent means the virtual terminal's default, add-or-update.
        .unwrap_or(1);
    let summary = |reply: &CustomerReply, id: &str| Summary {
        customer_id: id.to_owned(),
        action,
        result_code: reply.customer_response.result_code,
    };

    // The simulator's own table of the document's rules, not the client's validator.
    if let Some(text) = spec_rules::first_error(req) {
        let reply = error_reply(&req.customer, &text);
        let s = summary(&reply, &sent_id);
        return Ok((reply, s));
    }

    // Read the card before taking the store lock: decryption may be the slow part.
    let facts = match &req.card {
        Some(card) if card.number.is_some() || card.track_data.is_some() => {
            let ctx = ReadContext {
                device_code: req.device_code.as_deref(),
                bdks: &core.bdks,
            };
            match core.reader.read_card(card, &ctx) {
                Ok(f) => Some(f),
                Err(e) => {
                    let reply = error_reply(&req.customer, &format!("{}: {e}", e.field()));
                    let s = summary(&reply, &sent_id);
                    return Ok((reply, s));
                }
            }
        }
        _ => None,
    };

    let (reply, id) = core.store.transaction(|tx| -> Result<_, StoreError> {
        let auto = sent_id == "AUTO";
        if auto && action == 4 {
            return Ok((
                error_reply(
                    &req.customer,
                    "customer_id: AUTO cannot be used with action_code 4",
                ),
                sent_id.clone(),
            ));
        }
        let id = if auto {
            store::next_auto_id(tx)?
        } else {
            sent_id.clone()
        };
        let existing = if auto { None } else { store::get(tx, &id)? };

        match (action, existing) {
            (4, None) => Ok((
                error_reply(&req.customer, "customer_id: no such customer"),
                id,
            )),
            (4, Some(mut c)) => {
                let sent_token = req.card.as_ref().and_then(|k| k.token.as_deref());
                let held = c.card.as_ref().map(|k| k.token.as_str());
                if sent_token.is_some() && sent_token != held {
                    return Ok((
                        error_reply(
                            &req.customer,
                            "card.token: does not match the customer's token",
                        ),
                        id,
                    ));
                }
                if c.card.is_some() {
                    c.card = None;
                } else {
                    c.check_token = None;
                    c.check_last4 = None;
                    c.check_aba = None;
                }
                c.updated_count += 1;
                store::put(tx, &id, &c)?;
                Ok((approved(&id, &c), id))
            }
            (2, Some(c)) => Ok((approved(&id, &c), id)),
            (3, Some(_)) => Ok((
                error_reply(&req.customer, "customer_id: customer already exists"),
                id,
            )),
            (_, existing) => {
                let is_update = existing.is_some();
                let mut c = existing.unwrap_or_default();
                overlay(&mut c.fields, &req.customer);
                c.fields.customer_id = Some(id.clone());
                c.fields.action_code = None;
                if let Some(f) = &facts {
                    fill_names(&mut c.fields, f);
                    c.card = Some(card_of(&core.store, &id, f));
                } else if let Some(token) = req.card.as_ref().and_then(|k| k.token.as_deref()) {
                    // A card given by token must be the one already on file.
                    if c.card.as_ref().map(|k| k.token.as_str()) != Some(token) {
                        return Ok((error_reply(&req.customer, "card.token: unknown token"), id));
                    }
                }
                if let Some(check) = &req.check {
                    if let (Some(aba), Some(acct)) = (&check.aba_code, &check.account_number) {
                        let acct = acct.expose();
                        c.check_token = Some(core.store.check_token(&id, aba, acct));
                        c.check_last4 = acct.get(acct.len().saturating_sub(4)..).map(str::to_owned);
                        c.check_aba = Some(aba.clone());
                    }
                }
                if is_update {
                    c.updated_count += 1;
                }
                store::put(tx, &id, &c)?;
                Ok((approved(&id, &c), id))
            }
        }
    })?;
    let s = summary(&reply, &id);
    Ok((reply, s))
}

/// A declined answer (the `decline` fault): nothing stored.
pub fn declined(req: &CustomerRequest) -> CustomerReply {
    reply(
        RESULT_DECLINED,
        "002",
        "DECLINED",
        Some(req.customer.clone()),
    )
}

fn card_of(store: &Store, id: &str, f: &CardFacts) -> StoredCard {
    let pan = f.pan.expose();
    StoredCard {
        token: store.card_token(id, pan),
        account_type: brand_of(pan).map(str::to_owned),
        last4: pan.get(pan.len().saturating_sub(4)..).map(str::to_owned),
        expiry: f.expiry_mmyy.clone(),
    }
}

/// Names from Track 1 (`SURNAME/GIVEN TITLE`) when the request gave none.
fn fill_names(fields: &mut CustomerFields, f: &CardFacts) {
    let Some(name) = &f.cardholder_name else {
        return;
    };
    if fields.first_name.is_some() || fields.last_name.is_some() {
        return;
    }
    let (last, first) = name.split_once('/').unwrap_or((name.as_str(), ""));
    let first = first.split_whitespace().next().unwrap_or("");
    let clip =
        |s: &str| Some(s.trim().chars().take(50).collect::<String>()).filter(|s| !s.is_empty());
    fields.last_name = clip(last);
    fields.first_name = clip(first);
}

/// Supplied fields replace stored ones; absent fields keep what is stored.
fn overlay(base: &mut CustomerFields, new: &CustomerFields) {
    let pairs: [(&mut Option<String>, &Option<String>); 14] = [
        (&mut base.first_name, &new.first_name),
        (&mut base.last_name, &new.last_name),
        (&mut base.street_1, &new.street_1),
        (&mut base.street_2, &new.street_2),
        (&mut base.city, &new.city),
        (&mut base.state, &new.state),
        (&mut base.zip, &new.zip),
        (&mut base.country, &new.country),
        (&mut base.phone_number, &new.phone_number),
        (&mut base.company, &new.company),
        (&mut base.email, &new.email),
        (&mut base.email_receipt, &new.email_receipt),
        (&mut base.notes, &new.notes),
        (&mut base.customer_id, &new.customer_id),
    ];
    for (old, new) in pairs {
        if new.is_some() {
            old.clone_from(new);
        }
    }
}

fn approved(id: &str, c: &StoredCustomer) -> CustomerReply {
    let mut r = reply(RESULT_APPROVED, "000", "SUCCESS", Some(c.fields.clone()));
    if let Some(echo) = r.customer.as_mut() {
        echo.customer_id = Some(id.to_owned());
    }
    let resp = &mut r.customer_response;
    match &c.card {
        Some(card) => {
            resp.token = Some(card.token.clone());
            resp.account_type = card.account_type.clone();
            resp.account_last_4 = card.last4.clone();
            resp.expiration_date = card.expiry.clone();
        }
        None => {
            resp.token = c.check_token.clone();
            resp.account_last_4 = c.check_last4.clone();
        }
    }
    r
}

fn error_reply(echo: &CustomerFields, text: &str) -> CustomerReply {
    reply(RESULT_ERROR, "003", text, Some(echo.clone()))
}

fn reply(code: u8, sub: &str, text: &str, customer: Option<CustomerFields>) -> CustomerReply {
    CustomerReply {
        customer_response: CustomerResponse {
            result_code: code,
            result_sub_code: Some(sub.to_owned()),
            result_text: Some(text.chars().take(RESULT_TEXT_MAX).collect()),
            transaction_datetime: Some(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()),
            token: None,
            account_type: None,
            account_last_4: None,
            expiration_date: None,
        },
        customer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::record::CardRequest;
    use crate::gateway::sim::reader::ClearCardReader;

    fn core() -> Core {
        Core {
            store: Store::open(None).unwrap(),
            reader: Arc::new(ClearCardReader),
            bdks: vec![],
        }
    }

    fn req(id: &str, action: &str, first: &str) -> CustomerRequest {
        CustomerRequest {
            customer: CustomerFields {
                customer_id: Some(id.into()),
                action_code: Some(action.into()),
                first_name: Some(first.into()),
                ..Default::default()
            },
            card: Some(CardRequest {
                track_data: Some(
                    "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?"
                        .into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn actions() {
        let core = core();
        let (r1, _) = process(&core, &req("C1", "1", "A")).unwrap();
        let resp = &r1.customer_response;
        assert_eq!(resp.result_code, 1);
        assert_eq!(resp.account_type.as_deref(), Some("VI"));
        assert_eq!(resp.account_last_4.as_deref(), Some("1111"));
        assert_eq!(resp.expiration_date.as_deref(), Some("1225"));
        let (r2, _) = process(&core, &req("C1", "2", "B")).unwrap();
        assert_eq!(r2.customer.unwrap().first_name.as_deref(), Some("A"));
        assert_eq!(r2.customer_response.token, r1.customer_response.token);
        let (r3, _) = process(&core, &req("C1", "3", "C")).unwrap();
        assert_eq!(r3.customer_response.result_code, 3);
        assert!(r3
            .customer_response
            .result_text
            .unwrap()
            .contains("customer_id"));
        let (r4, _) = process(&core, &req("C1", "1", "D")).unwrap();
        assert_eq!(r4.customer.unwrap().first_name.as_deref(), Some("D"));
        let mut del = req("C1", "4", "D");
        del.card = None;
        let (r5, _) = process(&core, &del).unwrap();
        assert_eq!(r5.customer_response.result_code, 1);
        assert_eq!(r5.customer_response.token, None);
        let list = core.store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].1.updated_count, 2);
    }

    #[test]
    fn names_from_track_one() {
        let core = core();
        let mut r = req("C2", "1", "x");
        r.customer.first_name = None;
        let (reply, _) = process(&core, &r).unwrap();
        let c = reply.customer.unwrap();
        assert_eq!(c.last_name.as_deref(), Some("FDMS TEST CARD"));
        assert_eq!(c.first_name.as_deref(), Some("VISA"));
    }

    #[test]
    fn ciphertext_without_decoder() {
        let core = core();
        let mut r = req("C3", "1", "x");
        r.card = Some(CardRequest {
            track_data: Some("0A1B2C3D4E5F60718293A4B5C6D7E8F9".into()),
            ksn: Some("FFFF9876543210E00001".into()),
            ..Default::default()
        });
        let (reply, _) = process(&core, &r).unwrap();
        assert_eq!(reply.customer_response.result_code, 3);
        assert_eq!(
            reply.customer_response.result_text.as_deref(),
            Some("card.track_data: cannot decrypt (no decoder configured)")
        );
        assert!(core.store.list().unwrap().is_empty());
    }
}
