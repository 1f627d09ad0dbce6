//! Pure conversions of the original container's values into the gateway's: sums into exact
//! kopecks, times into UTC text, `txn_date` from a time, request headers masked, a request's
//! `txn_id`. No I/O; every rule is tested here.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Largest sum stored, in kopecks: the same bound as [`crate::qiwi::Amount`] (below 2^53, so
/// the float column `sum` still holds it exactly).
pub const MAX_MINOR: i64 = 9_007_199_254_740_991;

/// A sum converted to kopecks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kopecks {
    /// The sum in kopecks, rounded half to even when it was not whole.
    pub minor: i64,
    /// `false` when the value was not a whole number of kopecks (so `minor` is rounded).
    pub exact: bool,
}

/// Why a sum cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumError {
    /// Not a number (`NaN`, `Infinity`, text).
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// Below zero: the gateway stores payments, never refunds.
    #[error("`{0}` is negative")]
    Negative(String),
    /// Beyond what the gateway stores exactly.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Converts a sum as PostgreSQL prints it (`numeric::text` or `float8::text`: `10.45`,
/// `10.4500`, `45`, `1e+20`, `1.5e-05`) into kopecks, rounding half to even (banker's
/// rounding: `0.125` is 12 kopecks, `0.135` is 14) and saying whether it was exact. A
/// `float8` prints as the shortest text that reads back as the same double (PostgreSQL 12+),
/// so `10.45` stored as a double is `10.45`, not `10.4499999...`.
pub fn kopecks(text: &str) -> Result<Kopecks, SumError> {
    let t = text.trim();
    let nan = || SumError::NotANumber(text.to_owned());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| nan())?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_only(int) || !digits_only(frac) {
        return Err(nan());
    }
    // value = digits × 10^(exponent - frac.len()); kopecks = value × 100.
    let digits: String = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(Kopecks {
            minor: 0,
            exact: true,
        });
    }
    if negative {
        return Err(SumError::Negative(text.to_owned()));
    }
    let too_large = || SumError::TooLarge(text.to_owned());
    let shift = i64::from(exponent) - frac.len() as i64 + 2;
    let (whole, rest): (String, &str) = if shift >= 0 {
        // 17 digits already exceed MAX_MINOR: stop before building a huge string.
        if digits.len() as i64 + shift > 17 {
            return Err(too_large());
        }
        (format!("{digits}{}", "0".repeat(shift as usize)), "")
    } else {
        let cut = digits.len() as i64 + shift;
        if cut <= 0 {
            (String::new(), digits)
        } else {
            let cut = cut as usize;
            (digits[..cut].to_owned(), &digits[cut..])
        }
    };
    // A value whose whole part is cut away entirely (|cut| > 0 zeros before `rest`) is below
    // half a kopeck unless `rest` starts right at the first dropped position.
    let leading_zeros = if shift < 0 {
        (-(digits.len() as i64 + shift)).max(0) as usize
    } else {
        0
    };
    if whole.len() > 17 {
        return Err(too_large());
    }
    let mut minor: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let exact = rest.bytes().all(|b| b == b'0');
    if !exact && leading_zeros == 0 {
        let first = rest.as_bytes()[0];
        let beyond_half = rest[1..].bytes().any(|b| b != b'0');
        let up = first > b'5' || (first == b'5' && (beyond_half || minor % 2 == 1));
        if up {
            minor += 1;
        }
    }
    if minor > MAX_MINOR {
        return Err(too_large());
    }
    Ok(Kopecks { minor, exact })
}

/// Reads a time the original stored as text into UTC `YYYY-MM-DD HH:MM:SS`: with an offset
/// (`2022-02-10 15:00:00+03`, RFC 3339) it is converted; without one it is taken as UTC, as
/// the original wrote it. Fractions of a second are dropped. `None` when it is no time.
pub fn utc_text(text: &str) -> Option<String> {
    let t = text.trim();
    let with_offset = ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"];
    for f in with_offset {
        if let Ok(d) = DateTime::parse_from_str(t, f) {
            return Some(crate::db::format_time(d.with_timezone(&Utc)));
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(crate::db::format_time(d.with_timezone(&Utc)));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Some(crate::db::format_time(Utc.from_utc_datetime(&d)));
        }
    }
    None
}

/// The `txn_date` an imported payment gets: the original stored none, so its `created_at`
/// (UTC `YYYY-MM-DD HH:MM:SS`) in Moscow time as `YYYYMMDDHHMMSS`, the form QIWI sends. It
/// is when the original received the pay, seconds after QIWI's own `txn_date`; it lets a
/// registry reconciliation find the imported payments by date. `""` when unreadable.
pub fn txn_date_from(created_at_utc: &str) -> String {
    NaiveDateTime::parse_from_str(created_at_utc, "%Y-%m-%d %H:%M:%S")
        .map(|d| {
            Utc.from_utc_datetime(&d)
                .with_timezone(&chrono_tz::Europe::Moscow)
                .format("%Y%m%d%H%M%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// The original's `headers` (a JSON object, its values strings or lists of strings, or any
/// text) as the gateway's log stores them: a JSON object with `Authorization` and cookies
/// masked like the gateway's own log ([`crate::http::stored_header_value`]). Text that is no
/// JSON object is kept under the key `"original"` (masked as a whole when it holds a
/// credential).
pub fn stored_headers(text: &str) -> String {
    use serde_json::{Map, Value};
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) else {
        let lower = text.to_ascii_lowercase();
        let kept = if lower.contains("authorization") || lower.contains("cookie") {
            "***".to_owned()
        } else {
            crate::http::stored_header_value("original", text)
        };
        let mut m = Map::new();
        m.insert("original".into(), Value::from(kept));
        return Value::Object(m).to_string();
    };
    let mut out = Map::new();
    for (name, value) in obj {
        let mask = |s: &str| Value::from(crate::http::stored_header_value(&name, s));
        let masked = match value {
            Value::String(s) => mask(&s),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => mask(s),
                        other => mask(&other.to_string()),
                    })
                    .collect(),
            ),
            Value::Null => Value::Null,
            other => mask(&other.to_string()),
        };
        out.insert(name, masked);
    }
    Value::Object(out).to_string()
}

/// The canonical `txn_id` of a logged request, from its URL's query or its form body: what
/// links the request to its payment in the admin UI. `None` without one.
pub fn request_txn_id(url: &str, body: &str) -> Option<String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    [query, body]
        .into_iter()
        .flat_map(|s| url::form_urlencoded::parse(s.as_bytes()))
        .find(|(k, _)| k == "txn_id")
        .map(|(_, v)| {
            crate::qiwi::txn_id::canonical(v.trim())
                .chars()
                .take(40)
                .collect()
        })
}

/// The original's `status` as text (`0`, `1`, or a boolean's `true`/`false`): `Some(true)`
/// when the webhook was acknowledged, `Some(false)` when not, `None` for anything else.
pub fn delivered(status: &str) -> Option<bool> {
    match status.trim() {
        "1" | "true" | "t" => Some(true),
        "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(t: &str) -> (i64, bool) {
        let v = kopecks(t).unwrap();
        (v.minor, v.exact)
    }

    #[test]
    fn sums_become_exact_kopecks() {
        for (t, minor) in [
            ("10.45", 1045),
            ("10.4500", 1045),
            ("45", 4500),
            ("45.0", 4500),
            ("0", 0),
            ("0.00", 0),
            ("-0", 0),
            ("0.01", 1),
            ("1e+20", -1),
            ("1.5e+3", 150_000),
            ("1.5E3", 150_000),
            ("1e-2", 1),
            ("15000.00", 1_500_000),
            ("90071992547409.91", MAX_MINOR),
            (".5", 50),
        ] {
            if minor < 0 {
                assert!(matches!(kopecks(t), Err(SumError::TooLarge(_))), "{t}");
            } else {
                assert_eq!(k(t), (minor, true), "{t}");
            }
        }
    }

    #[test]
    fn sums_not_whole_kopecks_round_half_to_even_and_say_so() {
        for (t, minor) in [
            ("0.125", 12),
            ("0.135", 14),
            ("0.145", 14),
            ("10.455", 1046),
            ("10.4550001", 1046),
            ("10.4549999", 1045),
            ("0.005", 0),
            ("0.015", 2),
            ("0.0051", 1),
            ("0.001", 0),
            ("0.0001", 0),
            ("0.009", 1),
            ("1.5e-05", 0),
            ("2.675", 268),
            ("99.999", 10000),
        ] {
            assert_eq!(k(t), (minor, false), "{t}");
        }
    }

    #[test]
    fn what_is_no_sum_is_an_error_naming_it() {
        for t in [
            "NaN",
            "Infinity",
            "-Infinity",
            "",
            ".",
            "1,5",
            "abc",
            "1e",
            "--1",
        ] {
            assert!(matches!(kopecks(t), Err(SumError::NotANumber(_))), "{t}");
        }
        assert!(matches!(kopecks("-1.5"), Err(SumError::Negative(_))));
        assert!(matches!(
            kopecks("90071992547409.92"),
            Err(SumError::TooLarge(_))
        ));
        assert!(kopecks("NaN").unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn times_are_utc_with_or_without_an_offset() {
        for (t, want) in [
            ("2022-02-10 12:00:00", "2022-02-10 12:00:00"),
            ("2022-02-10 12:00:00.123456", "2022-02-10 12:00:00"),
            ("2022-02-10T12:00:00", "2022-02-10 12:00:00"),
            ("2022-02-10 15:00:00+03", "2022-02-10 12:00:00"),
            ("2022-02-10 15:00:00+03:00", "2022-02-10 12:00:00"),
            ("2022-02-10T12:00:00Z", "2022-02-10 12:00:00"),
        ] {
            assert_eq!(utc_text(t).as_deref(), Some(want), "{t}");
        }
        assert_eq!(utc_text("yesterday"), None);
    }

    #[test]
    fn txn_date_is_created_at_in_moscow_time() {
        assert_eq!(txn_date_from("2022-02-10 12:00:00"), "20220210150000");
        // Moscow was UTC+4 from 2011 to October 2014.
        assert_eq!(txn_date_from("2013-06-01 20:00:00"), "20130602000000");
        assert_eq!(txn_date_from("nonsense"), "");
    }

    #[test]
    fn headers_are_masked_whatever_their_shape() {
        let basic = "Basic cWl3aTpzM2NyZXQ="; // qiwi:s3cret
        let obj: serde_json::Value = serde_json::from_str(&stored_headers(&format!(
            r#"{{"Host":"shop","Authorization":"{basic}","Cookie":["a=b"],"X-N":5}}"#
        )))
        .unwrap();
        assert_eq!(obj["Host"], "shop");
        assert_eq!(obj["Authorization"], "Basic qiwi:***");
        assert_eq!(obj["Cookie"][0], "***");
        assert_eq!(obj["X-N"], "5");
        let text = stored_headers(&format!("Host: shop\r\nAuthorization: {basic}"));
        assert!(!text.contains("cWl3aT"), "{text}");
        let plain: serde_json::Value = serde_json::from_str(&stored_headers("Host: shop")).unwrap();
        assert_eq!(plain["original"], "Host: shop");
    }

    #[test]
    fn a_request_names_its_txn_id_from_query_or_form() {
        assert_eq!(
            request_txn_id("/payment?command=pay&txn_id=00123&sum=1", "").as_deref(),
            Some("123")
        );
        assert_eq!(
            request_txn_id("/payment", "command=pay&txn_id=77").as_deref(),
            Some("77")
        );
        assert_eq!(request_txn_id("/payment?command=check", ""), None);
    }

    #[test]
    fn status_is_zero_one_or_a_boolean() {
        assert_eq!(delivered("1"), Some(true));
        assert_eq!(delivered("true"), Some(true));
        assert_eq!(delivered("0"), Some(false));
        assert_eq!(delivered("f"), Some(false));
        assert_eq!(delivered("2"), None);
    }
}
