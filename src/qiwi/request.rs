//! Parsing a request's parameters into a [`Request`]: pure, unit-tested.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use percent_encoding::percent_decode;
use regex::Regex;

use super::{Amount, AmountError, Rejection};

/// Most extra parameters kept with a transaction; beyond that they are only in the request log.
const MAX_EXTRAS: usize = 32;
/// Longest extra parameter name or value kept (in characters).
const MAX_EXTRA_LEN: usize = 256;

/// The protocol command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Validate an account.
    Check,
    /// Make a payment.
    Pay,
}

/// QIWI's `txn_date`: `YYYYMMDDHHMMSS`, a real date-time, kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDate(String);

impl TxnDate {
    /// Parses `YYYYMMDDHHMMSS`, rejecting impossible dates (Feb 30, hour 24).
    pub fn parse(s: &str) -> Option<TxnDate> {
        (s.len() == 14
            && s.bytes().all(|b| b.is_ascii_digit())
            && NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").is_ok())
        .then(|| TxnDate(s.to_owned()))
    }

    /// As received.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The limits a request is judged against (from the configuration).
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    /// What a valid account looks like.
    pub account_pattern: &'a Regex,
    /// Smallest accepted sum.
    pub min_sum: Amount,
    /// Largest accepted sum.
    pub max_sum: Option<Amount>,
}

/// A well-formed, valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `check` or `pay`.
    pub command: Command,
    /// QIWI's transaction id: 1-20 digits, kept as text.
    pub txn_id: String,
    /// The customer's account.
    pub account: String,
    /// The sum.
    pub sum: Amount,
    /// QIWI's date of the payment (`pay` only).
    pub txn_date: Option<TxnDate>,
    /// Every other parameter (`ccy`, `prv_id`, ...), bounded.
    pub extra: BTreeMap<String, String>,
}

/// The decoded parameters of a request, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Set when some parameter was not valid UTF-8 after percent-decoding.
    invalid_utf8: bool,
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body).
/// Unlike a lossy decoder it remembers invalid UTF-8, so the request can be refused.
pub fn parse_params(raw: &[u8], into: &mut Params) {
    for piece in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &[][..]),
        };
        match (decode(k), decode(v)) {
            (Some(k), Some(v)) => into.pairs.push((k, v)),
            _ => into.invalid_utf8 = true,
        }
    }
}

fn decode(raw: &[u8]) -> Option<String> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    String::from_utf8(percent_decode(&plus).collect()).ok()
}

impl Params {
    /// The single value of `name`: `Ok(None)` when absent, an error when given twice.
    fn one(&self, name: &'static str) -> Result<Option<&str>, Rejection> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Rejection::Malformed(repeated(name)));
        }
        Ok(first)
    }

    /// The `command` parameter when it is one the protocol knows (a bounded metrics label).
    pub fn command(&self) -> Option<&'static str> {
        match self.pairs.iter().find(|(k, _)| k == "command")?.1.as_str() {
            "check" => Some("check"),
            "pay" => Some("pay"),
            _ => None,
        }
    }

    /// The raw `txn_id` for echoing back, even when the request is otherwise invalid.
    pub fn txn_id(&self) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == "txn_id")
            .map(|(_, v)| v.as_str())
    }

    /// Validates the parameters into a [`Request`], or the rejection to answer. Order matters:
    /// structural faults (300) come before business ones (4, 241, 242).
    pub fn parse(&self, rules: &Rules<'_>) -> Result<Request, Rejection> {
        if self.invalid_utf8 {
            return Err(Rejection::Malformed("parameters are not valid UTF-8"));
        }
        let command = match self.one("command")? {
            None | Some("") => return Err(Rejection::Malformed("command is missing")),
            Some("check") => Command::Check,
            Some("pay") => Command::Pay,
            Some(_) => return Err(Rejection::Malformed("unknown command")),
        };
        let txn_id = match self.one("txn_id")? {
            None | Some("") => return Err(Rejection::Malformed("txn_id is missing")),
            Some(t) if t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()) => t.to_owned(),
            Some(_) => return Err(Rejection::Malformed("txn_id must be 1-20 digits")),
        };
        let account = match self.one("account")? {
            None | Some("") => return Err(Rejection::Malformed("account is missing")),
            Some(a) => a,
        };
        let sum = match self.one("sum")? {
            None | Some("") => return Err(Rejection::Malformed("sum is missing")),
            Some(s) => match Amount::parse(s) {
                Ok(a) => Some(a),
                // Judged after the account, as 242 like any sum above the maximum.
                Err(AmountError::TooLarge) => None,
                Err(AmountError::Malformed) => {
                    return Err(Rejection::Malformed("sum is malformed"));
                }
            },
        };
        let txn_date = match (command, self.one("txn_date")?) {
            (Command::Check, _) => None,
            (Command::Pay, None | Some("")) => {
                return Err(Rejection::Malformed("txn_date is missing"));
            }
            (Command::Pay, Some(d)) => Some(
                TxnDate::parse(d).ok_or(Rejection::Malformed("txn_date must be YYYYMMDDHHMMSS"))?,
            ),
        };
        if !rules.account_pattern.is_match(account) {
            return Err(Rejection::BadAccount);
        }
        let sum = match sum {
            Some(s) if s < rules.min_sum => return Err(Rejection::SumTooSmall),
            Some(s) if rules.max_sum.is_none_or(|max| s <= max) => s,
            _ => return Err(Rejection::SumTooLarge),
        };
        let extra = self
            .pairs
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "command" | "txn_id" | "account" | "sum" | "txn_date"
                )
            })
            .take(MAX_EXTRAS)
            .map(|(k, v)| (bounded(k), bounded(v)))
            .collect();
        Ok(Request {
            command,
            txn_id,
            account: account.to_owned(),
            sum,
            txn_date,
            extra,
        })
    }
}

fn bounded(s: &str) -> String {
    s.chars().take(MAX_EXTRA_LEN).collect()
}

fn repeated(name: &'static str) -> &'static str {
    match name {
        "command" => "command is repeated",
        "txn_id" => "txn_id is repeated",
        "account" => "account is repeated",
        "sum" => "sum is repeated",
        _ => "txn_date is repeated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_ACCOUNT_PATTERN;

    fn parse_with(q: &str, min: i64, max: Option<i64>) -> Result<Request, Rejection> {
        let re = Regex::new(DEFAULT_ACCOUNT_PATTERN).unwrap();
        let rules = Rules {
            account_pattern: &re,
            min_sum: Amount::from_minor(min),
            max_sum: max.map(Amount::from_minor),
        };
        let mut p = Params::default();
        parse_params(q.as_bytes(), &mut p);
        p.parse(&rules)
    }

    fn parse(q: &str) -> Result<Request, Rejection> {
        parse_with(q, 1, None)
    }

    fn code(q: &str) -> u16 {
        match parse(q) {
            Ok(_) => 0,
            Err(r) => r.result_code().code(),
        }
    }

    #[test]
    fn parses_a_pay() {
        let r = parse("command=pay&txn_id=1234567&account=ab%2Bc+d%C3%A9&sum=10.45&txn_date=20240229235959&ccy=RUB&prv_id=7").unwrap_err();
        // "ab+c dé" has a space: the default pattern refuses white space.
        assert_eq!(r, Rejection::BadAccount);
        let r = parse("command=pay&txn_id=1234567&account=ab%2Bc%C3%A9&sum=10.45&txn_date=20240229235959&ccy=RUB&prv_id=7").unwrap();
        assert_eq!(r.command, Command::Pay);
        assert_eq!(r.txn_id, "1234567");
        assert_eq!(r.account, "ab+cé");
        assert_eq!(r.sum, Amount::from_minor(1045));
        assert_eq!(r.txn_date.unwrap().as_str(), "20240229235959");
        assert_eq!(r.extra.get("ccy").map(String::as_str), Some("RUB"));
        assert_eq!(r.extra.len(), 2);
    }

    #[test]
    fn check_needs_no_txn_date() {
        assert_eq!(code("command=check&txn_id=1&account=79001234567&sum=10"), 0);
    }

    #[test]
    fn result_codes_follow_the_parameter_table() {
        let cases = [
            ("txn_id=1&account=a&sum=1", 300),
            ("command=&txn_id=1&account=a&sum=1", 300),
            ("command=refund&txn_id=1&account=a&sum=1", 300),
            ("command=CHECK&txn_id=1&account=a&sum=1", 300),
            ("command=check&account=a&sum=1", 300),
            ("command=check&txn_id=&account=a&sum=1", 300),
            (
                "command=check&txn_id=123456789012345678901&account=a&sum=1",
                300,
            ),
            (
                "command=check&txn_id=12345678901234567890&account=a&sum=1",
                0,
            ),
            ("command=check&txn_id=-1&account=a&sum=1", 300),
            ("command=check&txn_id=1a&account=a&sum=1", 300),
            ("command=check&txn_id=1&sum=1", 300),
            ("command=check&txn_id=1&account=&sum=1", 300),
            ("command=check&txn_id=1&account=a", 300),
            ("command=check&txn_id=1&account=a&sum=", 300),
            ("command=check&txn_id=1&account=a&sum=1,5", 300),
            ("command=check&txn_id=1&account=a&sum=-1", 300),
            ("command=check&txn_id=1&account=a&sum=%2B1", 300),
            ("command=check&txn_id=1&account=a&sum=1e3", 300),
            ("command=check&txn_id=1&account=a&sum=1.005", 300),
            ("command=check&txn_id=1&account=a&sum=NaN", 300),
            (
                "command=check&txn_id=1&account=a&sum=100000000000000000000",
                242,
            ),
            ("command=check&txn_id=1&account=a&sum=0", 241),
            ("command=check&txn_id=1&account=a&sum=0.00", 241),
            ("command=check&txn_id=1&account=a%20b&sum=1", 4),
            ("command=check&txn_id=1&account=a%01b&sum=1", 4),
            ("command=check&txn_id=1&account=a%FFb&sum=1", 300),
            ("command=pay&txn_id=1&account=a&sum=1", 300),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20240230120000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20240101240000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=2024010112000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=+2024010112000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20240101120000",
                0,
            ),
            ("command=check&txn_id=1&txn_id=2&account=a&sum=1", 300),
            ("command=check&command=pay&txn_id=1&account=a&sum=1", 300),
            (
                "command=check&txn_id=1&account=a&sum=1&ccy=RUB&ccy=USD&x",
                0,
            ),
        ];
        for (q, want) in cases {
            assert_eq!(code(q), want, "{q}");
        }
        let long = format!("command=check&txn_id=1&account={}&sum=1", "a".repeat(201));
        assert_eq!(code(&long), 4);
        let ok = format!("command=check&txn_id=1&account={}&sum=1", "a".repeat(200));
        assert_eq!(code(&ok), 0);
    }

    #[test]
    fn sum_limits() {
        let q = "command=check&txn_id=1&account=a&sum=";
        assert_eq!(
            parse_with(&format!("{q}0.99"), 100, None),
            Err(Rejection::SumTooSmall)
        );
        assert!(parse_with(&format!("{q}1.00"), 100, Some(1000)).is_ok());
        assert!(parse_with(&format!("{q}10"), 100, Some(1000)).is_ok());
        assert_eq!(
            parse_with(&format!("{q}10.01"), 100, Some(1000)),
            Err(Rejection::SumTooLarge)
        );
    }

    #[test]
    fn extras_are_bounded() {
        let mut q = String::from("command=check&txn_id=1&account=a&sum=1");
        for i in 0..100 {
            q.push_str(&format!("&k{i}={}", "v".repeat(1000)));
        }
        let r = parse(&q).unwrap();
        assert_eq!(r.extra.len(), MAX_EXTRAS);
        assert!(r.extra.values().all(|v| v.chars().count() == MAX_EXTRA_LEN));
    }

    proptest::proptest! {
        /// Whatever bytes arrive, parsing ends in a request or a rejection, never a panic,
        /// and a request it accepts satisfies every rule.
        #[test]
        fn parsing_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(r) = parse_bytes(&raw) {
                proptest::prop_assert!(!r.txn_id.is_empty() && r.txn_id.len() <= 20);
                proptest::prop_assert!(r.sum >= Amount::from_minor(1));
            }
        }

        /// Well-formed requests built from arbitrary parts parse back to those parts.
        #[test]
        fn well_formed_requests_round_trip(
            txn in "[0-9]{1,20}",
            account in "[a-zA-Z0-9+<>&'\"]{1,50}",
            minor in 1i64..100_000_000_000,
        ) {
            let sum = Amount::from_minor(minor).to_string();
            let q = format!(
                "command=pay&txn_id={txn}&account={}&sum={sum}&txn_date=20240101120000",
                percent_encoding::utf8_percent_encode(&account, percent_encoding::NON_ALPHANUMERIC)
            );
            let r = parse(&q).unwrap();
            proptest::prop_assert_eq!(r.txn_id, txn);
            proptest::prop_assert_eq!(r.account, account);
            proptest::prop_assert_eq!(r.sum.minor(), minor);
        }
    }

    fn parse_bytes(raw: &[u8]) -> Result<Request, Rejection> {
        let re = Regex::new(DEFAULT_ACCOUNT_PATTERN).unwrap();
        let rules = Rules {
            account_pattern: &re,
            min_sum: Amount::from_minor(1),
            max_sum: None,
        };
        let mut p = Params::default();
        parse_params(raw, &mut p);
        p.parse(&rules)
    }

    #[test]
    fn echoes_the_raw_txn_id() {
        let mut p = Params::default();
        parse_params(b"txn_id=%3Cx%3E", &mut p);
        assert_eq!(p.txn_id(), Some("<x>"));
    }
}
