//! A report as text (what `qiwi-gateway reconcile` prints) and as CSV (the download).

use std::fmt::Write as _;

use super::{Difference, Kind, Report, Summary, Totals};
use crate::qiwi::Amount;

/// Kopecks as `1500.50`, with a sign when negative (a difference can be).
pub fn money(minor: i64) -> String {
    let a = Amount::from_minor(minor.unsigned_abs().try_into().unwrap_or(i64::MAX));
    if minor < 0 {
        format!("-{a}")
    } else {
        a.to_string()
    }
}

/// The report as text, one difference a line, missing-here first. `name` and `sha256`
/// identify the file.
pub fn text(report: &Report, name: &str, sha256: &str) -> String {
    let s = &report.summary;
    let mut out = String::new();
    let _ = writeln!(out, "registry: {name}");
    let _ = writeln!(out, "sha256:   {sha256}");
    let _ = writeln!(
        out,
        "read as:  {}, separator {}; period {} (Moscow days)",
        s.encoding,
        s.delimiter,
        period(s)
    );
    let _ = writeln!(out, "verdict:  {}", s.verdict());
    let _ = writeln!(
        out,
        "matched:  {} payments, {}",
        s.matched_count,
        money(s.matched_minor)
    );
    for kind in [
        Kind::MissingHere,
        Kind::MissingFromRegistry,
        Kind::Different,
        Kind::Malformed,
        Kind::Total,
    ] {
        let n = s.count(kind);
        if n == 0 {
            continue;
        }
        let _ = writeln!(out, "\n{} ({n}):", kind.title().to_uppercase());
        for d in report.differences.iter().filter(|d| d.kind == Some(kind)) {
            let _ = writeln!(out, "  {}", difference_line(d));
        }
    }
    let _ = writeln!(
        out,
        "\n{:<12} {:>10} {:>16} {:>10} {:>16} {:>16}",
        "day", "registry", "sum", "here", "sum", "difference"
    );
    for t in s.days.iter().chain([&s.total]) {
        let _ = writeln!(out, "{}", totals_line(t));
    }
    if let Some(t) = s.total_line_minor {
        let _ = writeln!(out, "total line: {}", money(t));
    }
    out
}

/// `first … last`, or the one day.
pub fn period(s: &Summary) -> String {
    match s.period {
        Some((a, b)) if a == b => a.to_string(),
        Some((a, b)) => format!("{a} … {b}"),
        None => "none".to_owned(),
    }
}

fn difference_line(d: &Difference) -> String {
    let mut parts = Vec::new();
    if let Some(l) = d.line {
        parts.push(format!("line {l}"));
    }
    if let Some(t) = &d.txn_id {
        parts.push(format!("txn_id {t}"));
    }
    if let Some(id) = d.payment_id {
        parts.push(format!("prv_txn {id}"));
    }
    match (&d.registry_date, &d.here_date) {
        (Some(r), _) => parts.push(format!("{r} UTC")),
        (None, Some(h)) => parts.push(format!("txn_date {h}")),
        _ => {}
    }
    let side = |a: &Option<String>, m: Option<i64>| {
        a.as_ref()
            .map(|a| format!("account {a} sum {}", m.map(money).unwrap_or_default()))
    };
    if let Some(r) = side(&d.registry_account, d.registry_minor) {
        parts.push(format!("registry: {r}"));
    }
    if let Some(h) = side(&d.here_account, d.here_minor) {
        parts.push(format!("here: {h}"));
    }
    parts.push(d.reason.clone());
    parts.join("  ")
}

fn totals_line(t: &Totals) -> String {
    format!(
        "{:<12} {:>10} {:>16} {:>10} {:>16} {:>16}",
        t.day.map_or_else(|| "all".to_owned(), |d| d.to_string()),
        t.registry_count,
        money(t.registry_minor),
        t.here_count,
        money(t.here_minor),
        money(t.difference())
    )
}

/// The report as CSV: a header, one row per difference, then the totals rows. Cells a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`) are prefixed with `'`.
pub fn csv(report: &Report) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "kind",
        "line",
        "txn_id",
        "prv_txn",
        "registry_date_utc",
        "registry_account",
        "registry_sum",
        "here_txn_date",
        "here_account",
        "here_sum",
        "reason",
    ])?;
    let opt = |v: Option<String>| v.unwrap_or_default();
    for d in &report.differences {
        let row = [
            d.kind.map(Kind::as_str).unwrap_or_default().to_owned(),
            opt(d.line.map(|l| l.to_string())),
            opt(d.txn_id.clone()),
            opt(d.payment_id.map(|i| i.to_string())),
            opt(d.registry_date.clone()),
            opt(d.registry_account.clone()),
            opt(d.registry_minor.map(money)),
            opt(d.here_date.clone()),
            opt(d.here_account.clone()),
            opt(d.here_minor.map(money)),
            d.reason.clone(),
        ];
        w.write_record(row.iter().map(|c| defuse(c)))?;
    }
    let s = &report.summary;
    w.write_record([
        "matched",
        "",
        "",
        "",
        "",
        "",
        &money(s.matched_minor),
        "",
        "",
        &money(s.matched_minor),
        &format!("{} payments", s.matched_count),
    ])?;
    for t in s.days.iter().chain([&s.total]) {
        let day = t.day.map_or_else(|| "all".to_owned(), |d| d.to_string());
        w.write_record([
            "totals",
            "",
            "",
            "",
            &day,
            "",
            &money(t.registry_minor),
            "",
            "",
            &money(t.here_minor),
            &format!(
                "registry {} payments, here {}, difference {}",
                t.registry_count,
                t.here_count,
                money(t.difference())
            ),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

fn defuse(cell: &str) -> String {
    // A negative sum is a number, not a formula.
    let number = cell.strip_prefix('-').is_some_and(money_like);
    if !number && cell.starts_with(['=', '+', '-', '@']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn money_like(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && b.len() == 2 && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_has_two_decimals_and_a_sign() {
        assert_eq!(money(150_050), "1500.50");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(0), "0.00");
    }

    #[test]
    fn csv_cells_cannot_run_as_formulas() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("-cmd"), "'-cmd");
        assert_eq!(defuse("-10.00"), "-10.00");
        assert_eq!(defuse("@a"), "'@a");
        assert_eq!(defuse("plain"), "plain");
    }
}
