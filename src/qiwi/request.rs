//! Parsing a request's parameters into a [`Request`]: pure, unit-tested.

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, Timelike};
use percent_encoding::percent_decode;
use regex::Regex;

use super::{Account, Amount, AmountError, Rejection, TxnId};

/// Most extra parameters a `pay` may carry (all kept with its transaction; more: 300). On
/// `check` and `getInfo` the rest are only in the request log.
const MAX_EXTRAS: usize = 32;
/// Longest extra parameter name or value a `pay` may carry (in characters; longer: 300).
const MAX_EXTRA_LEN: usize = 256;

/// The protocol command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Validate an account.
    Check,
    /// Make a payment.
    Pay,
    /// QIWI's current provider API: validate an account and fetch fields to show the payer,
    /// without a `txn_id`; answered like `check`, registers nothing (issue 11 point 1).
    GetInfo,
}

impl Command {
    /// The command as QIWI spells it (a bounded label for logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Check => "check",
            Command::Pay => "pay",
            Command::GetInfo => "getInfo",
        }
    }

    fn parse(s: &str) -> Option<Command> {
        match s {
            "check" => Some(Command::Check),
            "pay" => Some(Command::Pay),
            "getInfo" => Some(Command::GetInfo),
            _ => None,
        }
    }
}

/// QIWI's `txn_date`: `YYYYMMDDHHMMSS`, a real date-time, kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDate(String);

impl TxnDate {
    /// Parses `YYYYMMDDHHMMSS`, rejecting times that do not exist: Feb 30, hour 24, minute 60
    /// and second 60 (chrono reads `60` as a leap second; QIWI's Moscow time has none).
    /// Not such a time: the protocol's 300.
    pub fn parse(s: &str) -> Result<TxnDate, Rejection> {
        let real = s.len() == 14
            && s.bytes().all(|b| b.is_ascii_digit())
            && NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S")
                .is_ok_and(|t| t.nanosecond() < 1_000_000_000);
        if real {
            Ok(TxnDate(s.to_owned()))
        } else {
            Err(Rejection::Malformed("txn_date must be YYYYMMDDHHMMSS"))
        }
    }

    /// As received.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The limits a request is judged against (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// What a valid account looks like (anchored: see [`Account`]).
    pub account_pattern: &'a Regex,
    /// Smallest accepted sum.
    pub min_sum: Amount,
    /// Largest accepted sum.
    pub max_sum: Option<Amount>,
}

/// A well-formed, valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `check`, `pay` or `getInfo`.
    pub command: Command,
    /// QIWI's transaction id; `None` only on `getInfo`, which needs none.
    pub txn_id: Option<TxnId>,
    /// The customer's account.
    pub account: Account,
    /// The sum; always set on `pay`. On `check` and `getInfo`, `None` when it was absent or
    /// zero: "not known yet" (terminals check before cash is in), so no limit applies.
    pub sum: Option<Amount>,
    /// QIWI's date of the payment (`pay` only).
    pub txn_date: Option<TxnDate>,
    /// Every other parameter (`ccy`, `prv_id`, ...), bounded.
    pub extra: BTreeMap<String, String>,
}

/// The decoded parameters of a request, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Set when a protocol parameter (`command`, `txn_id`, `account`, `sum`, `txn_date`) was
    /// not valid UTF-8 after percent-decoding.
    invalid_utf8: bool,
    /// Set when a body came with a content type other than a form.
    unsupported_body: bool,
    /// Set when the URL or the body was over what a QIWI request carries.
    oversized: bool,
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body).
///
/// The protocol's own parameters (`command`, `txn_id`, `account`, `sum`, `txn_date`) must be
/// UTF-8: unlike a lossy decoder this remembers invalid UTF-8 in them, so the request is
/// refused (300). Every other (extra) parameter is never refused
/// (`shared/spec/qiwi-protocol.md`, Parameters): a name or value that is not valid UTF-8 is
/// read as windows-1251, the Cyrillic code page of older terminals and forms, in which every
/// byte is a character, so nothing is lost (`%C8` is `И`).
pub fn parse_params(raw: &[u8], into: &mut Params) {
    for piece in raw.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &[][..]),
        };
        // A name that is not UTF-8 is no protocol parameter's: an extra.
        let k = decode(k).unwrap_or_else(|bytes| windows_1251(&bytes));
        let v = match decode(v) {
            Ok(v) => v,
            Err(_) if is_protocol(&k) => {
                into.invalid_utf8 = true;
                continue;
            }
            Err(bytes) => windows_1251(&bytes),
        };
        into.pairs.push((k, v));
    }
}

/// Percent-decodes `raw` (`+` is a space) into UTF-8 text, or gives back the decoded bytes.
fn decode(raw: &[u8]) -> Result<String, Vec<u8>> {
    let plus: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    String::from_utf8(percent_decode(&plus).collect()).map_err(|e| e.into_bytes())
}

/// `bytes` read as windows-1251 (WHATWG's table, as `encoding_rs` has it: every byte maps to
/// a character, so the decoding never fails and can be undone).
fn windows_1251(bytes: &[u8]) -> String {
    encoding_rs::WINDOWS_1251
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
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
    pub fn command(&self) -> Option<Command> {
        Command::parse(&self.pairs.iter().find(|(k, _)| k == "command")?.1)
    }

    /// Marks the request as carrying a body that is not a form: it is answered 300.
    pub fn refuse_body(&mut self) {
        self.unsupported_body = true;
    }

    /// Marks the request as larger than any QIWI request (its URL or body over
    /// `db::http_log::FIELD_CAP`): it is answered 300 before anything else is judged, so no
    /// request whose log row was cut is ever answered 0 or a business code.
    pub fn refuse_oversized(&mut self) {
        self.oversized = true;
    }

    /// The `txn_id` the request's log row is filed under: the canonical number when it is
    /// one (so the transaction page finds every request of its payment), else as received.
    pub fn log_txn_id(&self) -> Option<String> {
        self.txn_id()
            .map(|t| super::txn_id::canonical(t).to_owned())
    }

    /// The raw `txn_id` for echoing back, even when the request is otherwise invalid.
    pub fn txn_id(&self) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == "txn_id")
            .map(|(_, v)| v.as_str())
    }

    /// Validates the parameters into a [`Request`], or the rejection to answer: [`Params::read`]
    /// then [`Draft::judge`]. Order matters: structural faults (300) come before business ones
    /// (4, 241, 242).
    pub fn parse(&self, rules: &Rules<'_>) -> Result<Request, Rejection> {
        self.read()?.judge(rules)
    }

    /// Reads the parameters into a [`Draft`], refusing only structural faults (the protocol's
    /// 300: missing, repeated or malformed parameters, an unknown command, a body that is not
    /// a form, invalid UTF-8 in a protocol parameter). The business rules are
    /// [`Draft::breach`]'s: a `pay` is judged by them only when its `txn_id` is new.
    pub fn read(&self) -> Result<Draft, Rejection> {
        if self.oversized {
            return Err(Rejection::Malformed("request too large"));
        }
        if self.unsupported_body {
            return Err(Rejection::Malformed("unsupported content type"));
        }
        if self.invalid_utf8 {
            return Err(Rejection::Malformed(
                "command, txn_id, account, sum or txn_date is not valid UTF-8",
            ));
        }
        let command = match self.one("command")? {
            None | Some("") => return Err(Rejection::Malformed("command is missing")),
            Some(c) => Command::parse(c).ok_or(Rejection::Malformed("unknown command"))?,
        };
        let txn_id = match (command, self.one("txn_id")?) {
            (Command::GetInfo, None | Some("")) => None,
            (_, t) => Some(TxnId::parse(t.unwrap_or(""))?),
        };
        let account = self.one("account")?.unwrap_or("");
        if account.is_empty() {
            return Err(Rejection::Malformed("account is missing"));
        }
        let sum = match (command, self.one("sum")?) {
            (Command::Pay, None | Some("")) => {
                return Err(Rejection::Malformed("sum is missing"));
            }
            (_, None | Some("")) => Ok(None),
            (_, Some(s)) => match Amount::parse(s) {
                Ok(a) => Ok(Some(a)),
                // Well-formed: a business refusal (242) like any sum above the maximum.
                Err(AmountError::TooLarge) => Err(Rejection::SumTooLarge),
                Err(AmountError::Malformed) => {
                    return Err(Rejection::Malformed("sum is malformed"));
                }
            },
        };
        let txn_date = match (command, self.one("txn_date")?) {
            (Command::Pay, None | Some("")) => {
                return Err(Rejection::Malformed("txn_date is missing"));
            }
            (Command::Pay, Some(d)) => Some(TxnDate::parse(d)?),
            _ => None,
        };
        let extras = || self.pairs.iter().filter(|(k, _)| !is_protocol(k));
        // A stored payment keeps its extra parameters whole: a pay carrying more than it can
        // keep is refused (300), never stored with a part of them.
        if command == Command::Pay
            && (extras().count() > MAX_EXTRAS
                || extras().any(|(k, v)| {
                    k.chars().count() > MAX_EXTRA_LEN || v.chars().count() > MAX_EXTRA_LEN
                }))
        {
            return Err(Rejection::Malformed(
                "more than 32 extra parameters, or one over 256 characters",
            ));
        }
        let extra = extras()
            .take(MAX_EXTRAS)
            .map(|(k, v)| (bounded(k), bounded(v)))
            .collect();
        Ok(Draft {
            command,
            txn_id,
            account: account.to_owned(),
            sum,
            txn_date,
            extra,
        })
    }
}

/// A request with no structural fault (every 300 is behind it), not yet judged against the
/// business rules (`account_pattern`, `min_sum`, `max_sum`). A `pay` whose `txn_id` is
/// already stored is answered from the stored row whatever these rules say now (QIWI repeats
/// an unanswered pay for up to 24 h, and a repeat "changes nothing": README, pay); they only
/// refuse new payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// `check`, `pay` or `getInfo`.
    pub command: Command,
    /// QIWI's transaction id; `None` only on `getInfo`, which needs none.
    pub txn_id: Option<TxnId>,
    /// The customer's account as received (not empty), not yet matched to `account_pattern`.
    pub account: String,
    /// The sum: `Ok(None)` when absent (`check` and `getInfo` only), `Err(SumTooLarge)` when
    /// well-formed but beyond what can be stored exactly.
    pub sum: Result<Option<Amount>, Rejection>,
    /// QIWI's date of the payment (`pay` only).
    pub txn_date: Option<TxnDate>,
    /// Every other parameter (`ccy`, `prv_id`, ...), bounded.
    pub extra: BTreeMap<String, String>,
}

impl Draft {
    /// The business rule the request breaks, if any, in the protocol's order: the account
    /// does not match `account_pattern` (4), the sum is beyond what can be stored (242), below
    /// `min_sum` (241) or above `max_sum` (242). On `check` and `getInfo` a zero sum is "not
    /// known yet" (terminals check before cash is in): no limit applies (issue 11 point 4).
    pub fn breach(&self, rules: &Rules<'_>) -> Option<Rejection> {
        if !rules.account_pattern.is_match(&self.account) {
            return Some(Rejection::BadAccount);
        }
        match self.sum {
            Err(r) => Some(r),
            Ok(Some(s)) if self.command != Command::Pay && s.minor() == 0 => None,
            Ok(Some(s)) if s < rules.min_sum => Some(Rejection::SumTooSmall),
            Ok(Some(s)) if rules.max_sum.is_some_and(|max| s > max) => Some(Rejection::SumTooLarge),
            Ok(_) => None,
        }
    }

    /// The valid [`Request`], or the business rule it breaks ([`Draft::breach`]).
    pub fn judge(self, rules: &Rules<'_>) -> Result<Request, Rejection> {
        if let Some(r) = self.breach(rules) {
            return Err(r);
        }
        let sum = match self.sum {
            Ok(Some(s)) if self.command != Command::Pay && s.minor() == 0 => None,
            other => other?,
        };
        Ok(Request {
            command: self.command,
            txn_id: self.txn_id,
            // breach() matched it to the pattern.
            account: Account::matched(self.account),
            sum,
            txn_date: self.txn_date,
            extra: self.extra,
        })
    }
}

/// Whether `name` is one of the protocol's own parameters (the rest are extras).
fn is_protocol(name: &str) -> bool {
    matches!(name, "command" | "txn_id" | "account" | "sum" | "txn_date")
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
    use crate::qiwi::{DEFAULT_ACCOUNT_PATTERN, anchored_pattern};

    fn parse_with(q: &str, min: i64, max: Option<i64>) -> Result<Request, Rejection> {
        let re = anchored_pattern(DEFAULT_ACCOUNT_PATTERN).unwrap();
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
        assert_eq!(r.txn_id.unwrap().canonical(), "1234567");
        assert_eq!(r.account.as_str(), "ab+cé");
        assert_eq!(r.sum, Some(Amount::from_minor(1045)));
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
            // check and getInfo: an absent, empty or zero sum is "not known yet"
            ("command=check&txn_id=1&account=a", 0),
            ("command=check&txn_id=1&account=a&sum=", 0),
            ("command=check&txn_id=0&account=a&sum=0.00", 0),
            ("command=getInfo&account=a", 0),
            ("command=getInfo&account=a&sum=0", 0),
            ("command=getInfo&account=a&sum=10.00&ccy=643&prv_id=1", 0),
            ("command=getInfo&account=a&sum=1,5", 300),
            ("command=getInfo&account=a&txn_id=x", 300),
            ("command=getInfo&sum=1", 300),
            ("command=getinfo&account=a", 300),
            ("command=getInfo&account=a%20b", 4),
            (
                "command=pay&txn_id=1&account=a&sum=0&txn_date=20240101120000",
                241,
            ),
            (
                "command=pay&txn_id=1&account=a&txn_date=20240101120000",
                300,
            ),
            // second 60 and its relatives never exist
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261130101560",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261231235960",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261130106000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261130101599",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20230229120000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261301120000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261100120000",
                300,
            ),
            (
                "command=pay&txn_id=1&account=a&sum=1&txn_date=20261130235959",
                0,
            ),
            (
                "command=pay&txn_id=000881401&account=a&sum=1&txn_date=20261130235959",
                0,
            ),
            ("command=check&txn_id=1&account=a&sum=", 0),
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
            ("command=check&txn_id=1&account=a&sum=0", 0),
            ("command=check&txn_id=1&account=a&sum=0.00", 0),
            ("command=check&txn_id=1&account=a&sum=0.001", 300),
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
    fn a_pay_that_breaks_a_rule_is_read_and_its_breach_named() {
        let re = anchored_pattern("[0-9]+").unwrap();
        let rules = Rules {
            account_pattern: &re,
            min_sum: Amount::from_minor(20_000),
            max_sum: Some(Amount::from_minor(5_000)),
        };
        let read = |q: &str| {
            let mut p = Params::default();
            parse_params(q.as_bytes(), &mut p);
            p.read()
        };
        let pay = "command=pay&txn_id=777&txn_date=20240101120000";
        // structural faults stay the reader's
        assert_eq!(
            read(&format!("{pay}&account=ACC-1&sum=1,00")),
            Err(Rejection::Malformed("sum is malformed"))
        );
        let d = read(&format!("{pay}&account=ACC-1&sum=100.00")).unwrap();
        assert_eq!(d.account, "ACC-1");
        assert_eq!(d.sum, Ok(Some(Amount::from_minor(10_000))));
        assert_eq!(d.breach(&rules), Some(Rejection::BadAccount));
        let d = read(&format!("{pay}&account=1&sum=100.00")).unwrap();
        assert_eq!(d.breach(&rules), Some(Rejection::SumTooSmall));
        let d = read(&format!("{pay}&account=1&sum=100000000000000000000")).unwrap();
        assert_eq!(d.sum, Err(Rejection::SumTooLarge));
        assert_eq!(d.clone().judge(&rules), Err(Rejection::SumTooLarge));
        let loose = Rules {
            max_sum: None,
            min_sum: Amount::from_minor(1),
            ..rules
        };
        let d = read(&format!("{pay}&account=1&sum=100.00")).unwrap();
        assert_eq!(d.breach(&loose), None);
        assert_eq!(d.judge(&loose).unwrap().account.as_str(), "1");
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

    /// A pay keeps every extra parameter or is refused: never stored with a part of them.
    #[test]
    fn a_pay_carrying_more_extras_than_it_keeps_is_refused() {
        let pay = "command=pay&txn_id=1&account=a&sum=1&txn_date=20240101120000";
        let within: String = (0..MAX_EXTRAS)
            .map(|i| format!("&k{i}={}", "v".repeat(MAX_EXTRA_LEN)))
            .collect();
        let r = parse(&format!("{pay}{within}")).unwrap();
        assert_eq!(r.extra.len(), MAX_EXTRAS);
        assert!(r.extra.values().all(|v| v.len() == MAX_EXTRA_LEN));
        for over in [
            format!("{within}&one=more"),
            format!("&long={}", "v".repeat(MAX_EXTRA_LEN + 1)),
            format!("&{}=v", "k".repeat(MAX_EXTRA_LEN + 1)),
        ] {
            assert_eq!(
                parse(&format!("{pay}{over}")),
                Err(Rejection::Malformed(
                    "more than 32 extra parameters, or one over 256 characters"
                ))
            );
        }
        let mut p = Params::default();
        parse_params(pay.as_bytes(), &mut p);
        p.refuse_oversized();
        assert_eq!(p.read(), Err(Rejection::Malformed("request too large")));
    }

    proptest::proptest! {
        /// Whatever bytes arrive, parsing ends in a request or a rejection, never a panic,
        /// and a request it accepts satisfies every rule.
        #[test]
        fn parsing_never_panics(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(r) = parse_bytes(&raw) {
                if let Some(t) = &r.txn_id {
                    proptest::prop_assert!(!t.canonical().is_empty() && t.received().len() <= 20);
                }
                proptest::prop_assert!(r.sum.is_none_or(|s| s >= Amount::from_minor(1)));
                proptest::prop_assert!(r.command != Command::Pay || r.sum.is_some());
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
            let txn_id = r.txn_id.unwrap();
            proptest::prop_assert_eq!(txn_id.received(), txn.as_str());
            proptest::prop_assert_eq!(r.account.as_str(), account.as_str());
            proptest::prop_assert_eq!(r.sum.map(Amount::minor), Some(minor));
        }
    }

    fn parse_bytes(raw: &[u8]) -> Result<Request, Rejection> {
        let re = anchored_pattern(DEFAULT_ACCOUNT_PATTERN).unwrap();
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
    fn extras_that_are_not_utf8_are_read_as_windows_1251_and_never_refused() {
        let r = parse("command=check&txn_id=1&account=a&sum=10&ccy=%C8&%E8%EC%FF=%E2%E0%F1%FF")
            .unwrap();
        assert_eq!(r.extra.get("ccy").map(String::as_str), Some("И"));
        assert_eq!(r.extra.get("имя").map(String::as_str), Some("вася"));
        // every byte is a character there: nothing is lost
        let all: Vec<u8> = (0x80..=0xFF).collect();
        let (text, had_errors) = encoding_rs::WINDOWS_1251.decode_without_bom_handling(&all);
        assert!(!had_errors);
        assert_eq!(text.chars().count(), 128);
        assert_eq!(&*encoding_rs::WINDOWS_1251.encode(&text).0, &all[..]);
        // the protocol's own parameters stay strict
        let strict = Err(Rejection::Malformed(
            "command, txn_id, account, sum or txn_date is not valid UTF-8",
        ));
        for q in [
            "command=pay%C8&txn_id=1&account=a&sum=1&txn_date=20240101120000",
            "command=pay&txn_id=1%C8&account=a&sum=1&txn_date=20240101120000",
            "command=pay&txn_id=1&account=a%C8&sum=1&txn_date=20240101120000",
            "command=pay&txn_id=1&account=a&sum=1%C8&txn_date=20240101120000",
            "command=pay&txn_id=1&account=a&sum=1&txn_date=20240101120000%C8",
        ] {
            assert_eq!(parse(q), strict, "{q}");
        }
    }

    #[test]
    fn echoes_the_raw_txn_id() {
        let mut p = Params::default();
        parse_params(b"txn_id=%3Cx%3E", &mut p);
        assert_eq!(p.txn_id(), Some("<x>"));
    }
}
