//! `CheckRead`: what a MICR line holds once decoded (design.md §3 Checks).
use compact_str::CompactString;
use serde_json::{json, Value};

use super::AccountNumber;

/// A check with an auxiliary on-us field is a business check, otherwise personal (micr.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckType {
    Personal,
    Business,
}

impl CheckType {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Personal => "personal",
            CheckType::Business => "business",
        }
    }
}

/// The fields of one check's MICR line. The account number is the only secret; `Debug` masks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRead {
    /// Routing (ABA) number: 9 digits, check digit verified.
    pub aba_code: CompactString,
    pub account: AccountNumber,
    /// Serial number as printed (leading zeros kept); `None` when absent or unreadable.
    pub check_number: Option<CompactString>,
    pub check_type: CheckType,
    /// External processing code, one digit.
    pub epc: Option<u8>,
    /// Amount in cents when the line carries a readable one.
    pub amount_cents: Option<u64>,
    /// The reader's `/NN` status, when it sent one.
    pub reader_status: Option<u8>,
}

impl CheckRead {
    /// `"19.57"` for 1957 cents.
    pub fn amount_text(&self) -> Option<String> {
        self.amount_cents
            .map(|c| format!("{}.{:02}", c / 100, c % 100))
    }

    /// The `check` object of design.md §3: the account masked to its last 4.
    pub fn to_json(&self) -> Value {
        json!({
            "aba_code": self.aba_code,
            "account_last4": self.account.last4(),
            "account_masked": self.account.masked(),
            "check_number": self.check_number,
            "type": self.check_type.as_str(),
            "epc": self.epc.map(|d| d.to_string()),
            "amount": self.amount_text(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_masks_the_account() {
        let c = CheckRead {
            aba_code: "122000218".into(),
            account: AccountNumber::new("123456789").unwrap(),
            check_number: Some("1321".into()),
            check_type: CheckType::Personal,
            epc: Some(2),
            amount_cents: Some(1957),
            reader_status: None,
        };
        let v = c.to_json();
        assert_eq!(
            v,
            json!({"aba_code":"122000218","account_last4":"6789","account_masked":"*****6789",
                   "check_number":"1321","type":"personal","epc":"2","amount":"19.57"})
        );
        assert!(!format!("{c:?}").contains("123456789"));
    }
}
