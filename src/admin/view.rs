//! How values are shown and how filter forms are read: shared by the pages.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Settings;
use crate::db::pager::{Cursor, Page};

/// Money from exact minor units: always two decimals, no grouping, `.` (forms, logs).
pub fn money(minor: i128) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let a = minor.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// How amounts are written for people: `en` `311,192.27 RUB`, `ru` `311 192,27 ₽`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayLocale {
    /// English (the default).
    #[default]
    En,
    /// Russian.
    Ru,
}

/// How times and amounts are shown: the configured display time zone and locale.
#[derive(Debug, Clone, Copy)]
pub struct Fmt {
    /// Where times are shown and read (`display_timezone`).
    pub tz: Tz,
    /// How amounts are written (`display_locale`).
    pub locale: DisplayLocale,
}

impl Fmt {
    /// The display settings of the admin UI's `settings`.
    pub fn new(settings: &Settings) -> Fmt {
        Fmt {
            tz: settings.display_timezone,
            locale: settings.display_locale,
        }
    }

    /// UTC and English: for pages that show no configured values.
    pub fn utc() -> Fmt {
        Fmt {
            tz: Tz::UTC,
            locale: DisplayLocale::En,
        }
    }

    /// The zone's IANA name, the label every time on the pages carries.
    pub fn zone(&self) -> &'static str {
        self.tz.name()
    }

    /// A stored UTC time (`YYYY-MM-DD HH:MM:SS`) in the display zone, same format; other
    /// text as it is.
    pub fn time(&self, utc: &str) -> String {
        match NaiveDateTime::parse_from_str(utc, "%Y-%m-%d %H:%M:%S") {
            Ok(t) => self
                .tz
                .from_utc_datetime(&t)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            Err(_) => utc.to_owned(),
        }
    }

    /// A UTC instant in the display zone.
    pub fn instant(&self, t: chrono::DateTime<chrono::Utc>) -> String {
        t.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    /// A local wall-clock time of the display zone as the stored UTC text. In a DST gap the
    /// first existing instant after it; when a time repeats, its first occurrence.
    pub fn utc_of(&self, local: NaiveDateTime) -> String {
        let mut t = local;
        // A gap is at most a few hours (and at most one a day): step over it.
        for _ in 0..48 {
            if let Some(d) = self.tz.from_local_datetime(&t).earliest() {
                return crate::db::format_time(d.to_utc());
            }
            t += TimeDelta::minutes(30);
        }
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// A count with thousands grouped per locale: `1,234,567` (en), `1 234 567` (ru).
    pub fn count(&self, n: i64) -> String {
        let sign = if n < 0 { "-" } else { "" };
        format!("{sign}{}", self.group(u128::from(n.unsigned_abs())))
    }

    // Russian groups with a plain space, not U+00A0: every page writes U+00A0 out as
    // `\u{A0}` (`admin::visible`, so request data cannot hide one), and `.num` cells do not wrap.
    fn group(&self, whole: u128) -> String {
        let sep = match self.locale {
            DisplayLocale::En => ',',
            DisplayLocale::Ru => ' ',
        };
        let digits = whole.to_string();
        let mut grouped = String::with_capacity(digits.len() * 4 / 3 + 1);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(sep);
            }
            grouped.push(c);
        }
        grouped
    }

    /// Money for people: thousands grouped and the currency, per locale:
    /// `311,192.27 RUB` (en) or `311 192,27 ₽` (ru, no-break spaces).
    pub fn money(&self, minor: i128) -> String {
        let sign = if minor < 0 { "-" } else { "" };
        let a = minor.unsigned_abs();
        let whole = self.group(a / 100);
        match self.locale {
            DisplayLocale::En => format!("{sign}{whole}.{:02} RUB", a % 100),
            DisplayLocale::Ru => format!("{sign}{whole},{:02} ₽", a % 100),
        }
    }

    /// Money for a spreadsheet cell: no grouping, the locale's decimal mark (`1234.50`,
    /// `1234,50`), so it is read as a number.
    pub fn money_cell(&self, minor: i128) -> String {
        let m = money(minor);
        match self.locale {
            DisplayLocale::En => m,
            DisplayLocale::Ru => m.replace('.', ","),
        }
    }
}

/// A badge: its CSS modifier and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Badge {
    /// `ok`, `warn`, `bad` or `muted`.
    pub class: &'static str,
    /// What it says.
    pub label: &'static str,
}

/// A transaction's delivery state: acknowledged; queued (due now, e.g. after a resend);
/// not tried yet; failing (retried later); or given up (failed `webhook_max_attempts` times:
/// nothing is due until a resend). `now_ms` is the present (Unix ms).
pub fn txn_badge(status: i64, attempts: i64, due_ms: Option<i64>, now_ms: i64) -> Badge {
    if status != 1 && attempts > 0 && due_ms.is_some_and(|d| d <= now_ms) {
        return Badge {
            class: "warn",
            label: "queued",
        };
    }
    match (status, attempts, due_ms) {
        (1, _, _) => Badge {
            class: "ok",
            label: "delivered",
        },
        (_, 0, _) => Badge {
            class: "warn",
            label: "received",
        },
        (_, _, Some(_)) => Badge {
            class: "bad",
            label: "failing",
        },
        (_, _, None) => Badge {
            class: "bad",
            label: "given up",
        },
    }
}

/// The CSS modifier of an HTTP status.
pub fn http_class(status: i64) -> &'static str {
    match status {
        200..=299 => "ok",
        300..=499 => "warn",
        _ => "bad",
    }
}

/// A protocol result code: its badge (0 fine, 1 and 90 make QIWI retry, the rest are final).
pub fn result_class(code: i64) -> &'static str {
    match code {
        0 => "ok",
        1 | 90 => "warn",
        _ => "bad",
    }
}

/// What a protocol result code means (shared/spec/qiwi-protocol.md).
pub fn result_meaning(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "temporary error, QIWI retries",
        4 => "wrong account format",
        5 => "account not found",
        7 => "payments forbidden by the provider",
        79 => "account not active",
        90 => "payment not finished",
        241 => "sum too small",
        242 => "sum too large",
        243 => "cannot check the account",
        300 => "other provider error",
        _ => "unknown code",
    }
}

/// `created_at` (UTC text) as an age relative to `now`: "5 min ago".
pub fn ago(at: &str, now: NaiveDateTime) -> String {
    let Ok(t) = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S") else {
        return String::new();
    };
    duration(now.signed_duration_since(t)) + " ago"
}

/// A duration in its two largest units: "3 h 12 min".
pub fn duration(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (days, h, m) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    match (days, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// A JSON object as name/value rows (strings unquoted, other values as JSON). Anything else
/// becomes one row with an empty name and the text as it is.
pub fn json_rows(text: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ if text.is_empty() => Vec::new(),
        _ => vec![(String::new(), text.to_owned())],
    }
}

/// The decoded parameters of a query string or form body.
pub fn params(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A configured URL shown without what may be secret in it (user, password, query).
pub fn public_url(u: &url::Url) -> String {
    let mut s = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(p) = u.port() {
        s.push_str(&format!(":{p}"));
    }
    s.push_str(u.path());
    s
}

/// A filter form read from the query string into `T` (a serde-derived struct of text fields,
/// `#[serde(default)]`): values trimmed, blank ones taken as absent, a repeated key's last
/// value kept, unknown keys ignored. Never rejects the request: the page checks each field and
/// shows its own message for a bad value.
pub struct FormQuery<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequestParts<S> for FormQuery<T> {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(FormQuery(form_query(parts.uri.query())))
    }
}

/// [`FormQuery`]'s reading of the query string `raw`.
pub fn form_query<T: DeserializeOwned + Default>(raw: Option<&str>) -> T {
    let fields = query_map(raw).into_iter();
    T::deserialize(serde::de::value::MapDeserializer::<
        _,
        serde::de::value::Error,
    >::new(fields))
    .unwrap_or_default()
}

/// A list page's keyset cursor as the query string carries it: `after=id` (older rows) or
/// `before=id` (newer rows); a value that is not an id is ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageQuery {
    /// Rows older than this id.
    pub after: String,
    /// Rows newer than this id.
    pub before: String,
}

impl PageQuery {
    /// The cursor, `after` first.
    pub fn cursor(&self) -> Option<Cursor> {
        if let Ok(id) = self.after.parse() {
            Some(Cursor::After(id))
        } else {
            self.before.parse().ok().map(Cursor::Before)
        }
    }
}

/// A query string's fields, last value winning, blank values dropped.
pub fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// A query string of `pairs` with blank values left out.
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// Reads a time-range filter: `from` and `to` are days (`2024-01-31`, `to` inclusive) or
/// times (`2024-01-31 12:00[:00]`, also with `T`) of the display zone. Returns `created_at >= from` and
/// `created_at < until` bounds in the stored text form.
pub fn time_range(
    from: Option<&String>,
    to: Option<&String>,
    zone: &Fmt,
    errors: &mut Vec<String>,
) -> (Option<String>, Option<String>) {
    let fmt = |t: NaiveDateTime| zone.utc_of(t);
    let from = from.and_then(|s| match parse_time(s) {
        Some((t, _)) => Some(fmt(t)),
        None => {
            errors.push(
                "“From” is not a date like 2024-01-31 or a time like 2024-01-31 12:00.".into(),
            );
            None
        }
    });
    let until = to.and_then(|s| match parse_time(s) {
        // Inclusive: the whole day, minute or second named.
        Some((t, step)) => Some(fmt(t + step)),
        None => {
            errors
                .push("“To” is not a date like 2024-01-31 or a time like 2024-01-31 12:00.".into());
            None
        }
    });
    (from, until)
}

/// A day or a time, with the length of what it names.
fn parse_time(s: &str) -> Option<(NaiveDateTime, TimeDelta)> {
    let s = s.replace('T', " ");
    if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        return Some((d.and_hms_opt(0, 0, 0)?, TimeDelta::days(1)));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S") {
        // chrono reads second 60 as a leap second: a time that never exists here (issue 11.7).
        return (t.nanosecond() < 1_000_000_000).then_some((t, TimeDelta::seconds(1)));
    }
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M")
        .ok()
        .map(|t| (t, TimeDelta::minutes(1)))
}

/// Links of a list page: to its older and newer neighbours and back to the first page.
pub struct Pager {
    /// The next, older page.
    pub older: Option<String>,
    /// The previous, newer page.
    pub newer: Option<String>,
    /// The first page, when this is not it.
    pub first: Option<String>,
    /// The page stopped early after walking its row budget.
    pub budget_hit: bool,
}

impl Pager {
    /// The links of `page` of the list at `path` with the filters `qs`.
    pub fn new<T>(path: &str, qs: &str, page: &Page<T>, cursor: Option<Cursor>) -> Pager {
        let link = |key: &str, id: i64| {
            if qs.is_empty() {
                format!("{path}?{key}={id}")
            } else {
                format!("{path}?{qs}&{key}={id}")
            }
        };
        Pager {
            older: page.older.map(|id| link("after", id)),
            newer: page.newer.map(|id| link("before", id)),
            first: (cursor.is_some() && page.newer.is_some()).then(|| {
                if qs.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{qs}")
                }
            }),
            budget_hit: page.budget_hit,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_filters_refuse_times_that_do_not_exist() {
        for bad in [
            "2026-11-30 10:15:60",
            "2026-11-30 10:60",
            "2026-11-30 24:00",
            "2026-02-30",
            "2025-02-29 12:00:00",
        ] {
            assert_eq!(super::parse_time(bad), None, "{bad}");
        }
        assert!(super::parse_time("2026-11-30 10:15:59").is_some());
        assert!(super::parse_time("2024-02-29").is_some());
    }

    use super::*;

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(1045), "10.45");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(100_000_000), "1000000.00");
    }

    fn fmt(tz: &str, locale: DisplayLocale) -> Fmt {
        Fmt {
            tz: tz.parse().unwrap(),
            locale,
        }
    }

    #[test]
    fn money_is_grouped_with_the_currency_per_locale() {
        let en = fmt("UTC", DisplayLocale::En);
        let ru = fmt("UTC", DisplayLocale::Ru);
        assert_eq!(en.money(31_119_227), "311,192.27 RUB");
        assert_eq!(ru.money(31_119_227), "311 192,27 ₽");
        assert_eq!(en.money(99), "0.99 RUB");
        assert_eq!(en.money(100_000), "1,000.00 RUB");
        assert_eq!(en.money(-123_456_789), "-1,234,567.89 RUB");
        // Past i64: 1,025 payments of the largest sum.
        let big = 1025 * i128::from(9_007_199_254_740_991i64);
        assert_eq!(en.money(big), "92,323,792,361,095,157.75 RUB");
        assert_eq!(ru.money_cell(123_450), "1234,50");
        assert_eq!(en.count(1_234_567), "1,234,567");
        assert_eq!(ru.count(100_000), "100 000");
        assert_eq!(en.money_cell(123_450), "1234.50");
    }

    #[test]
    fn times_are_shown_and_read_in_the_display_zone() {
        let msk = fmt("Europe/Moscow", DisplayLocale::En);
        assert_eq!(msk.time("2024-01-31 21:30:00"), "2024-02-01 00:30:00");
        assert_eq!(msk.zone(), "Europe/Moscow");
        let mut e = Vec::new();
        // A Moscow day is 21:00-21:00 UTC.
        let r = time_range(
            Some(&"2024-02-01".to_owned()),
            Some(&"2024-02-01".to_owned()),
            &msk,
            &mut e,
        );
        assert_eq!(
            r,
            (
                Some("2024-01-31 21:00:00".into()),
                Some("2024-02-01 21:00:00".into())
            )
        );
        // A DST gap (Berlin, 2024-03-31 02:00-03:00 does not exist) reads as its end.
        let ber = fmt("Europe/Berlin", DisplayLocale::En);
        let t = NaiveDateTime::parse_from_str("2024-03-31 02:30:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(ber.utc_of(t), "2024-03-31 01:00:00");
        assert!(e.is_empty());
    }

    #[test]
    fn time_ranges_include_the_day_or_minute_named() {
        let mut e = Vec::new();
        let utc = fmt("UTC", DisplayLocale::En);
        let r = time_range(
            Some(&"2024-01-31".to_owned()),
            Some(&"2024-02-29".to_owned()),
            &utc,
            &mut e,
        );
        assert_eq!(
            r,
            (
                Some("2024-01-31 00:00:00".into()),
                Some("2024-03-01 00:00:00".into())
            )
        );
        let r = time_range(None, Some(&"2024-01-31T12:30".to_owned()), &utc, &mut e);
        assert_eq!(r, (None, Some("2024-01-31 12:31:00".into())));
        assert!(e.is_empty());
        let r = time_range(Some(&"yesterday".to_owned()), None, &utc, &mut e);
        assert_eq!(r, (None, None));
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn json_rows_show_objects_as_pairs() {
        assert_eq!(
            json_rows(r#"{"a":"x","b":2}"#),
            vec![("a".into(), "x".into()), ("b".into(), "2".into())]
        );
        assert_eq!(
            json_rows("not json"),
            vec![(String::new(), "not json".into())]
        );
        assert!(json_rows("").is_empty());
    }

    #[test]
    fn configured_urls_hide_credentials_and_query() {
        let u = url::Url::parse("https://u:p@hooks.example:8443/qiwi?token=s").unwrap();
        assert_eq!(public_url(&u), "https://hooks.example:8443/qiwi");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(TimeDelta::seconds(42)), "42 s");
        assert_eq!(
            duration(TimeDelta::seconds(3 * 3600 + 12 * 60)),
            "3 h 12 min"
        );
        assert_eq!(
            duration(TimeDelta::days(2) + TimeDelta::hours(5)),
            "2 d 5 h"
        );
    }
}
