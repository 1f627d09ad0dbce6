//! A realistic database written fast, straight into SQLite, for measuring the gateway at
//! scale (issue 14): years of payments (ids, times and txn_ids growing together), their
//! webhook attempts, a request-log window of checks, pays, repeats and refusals, a backlog of
//! undelivered payments (the row is the outbox: `delivery_due_ms` set) and payments whose
//! deliveries keep failing, and chart aggregates consistent with all of it.
//!
//! Fast because it writes with the journal off and `synchronous=OFF` into a new file, drops
//! the secondary indexes while inserting (rebuilding each from its own `CREATE INDEX` text
//! afterwards, sorted in one pass) and fills the chart tables with migration 0007's queries
//! instead of firing a trigger per row. The file is then switched to WAL as the gateway uses it.
//! Only for new files: it refuses an existing one.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{Connection, params};

use super::DbError;

/// What to write. Times are spread evenly (with jitter) over `days` days ending at `now`.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Payments (`qiwi_transaction` rows).
    pub transactions: u64,
    /// Request-log rows, all within the last `log_days` days (the retention window).
    pub log_rows: u64,
    /// Days the payments span, ending at `now`.
    pub days: u32,
    /// Days the request log spans, ending at `now`.
    pub log_days: u32,
    /// Distinct customer accounts.
    pub accounts: u64,
    /// The newest payment's time (the seeded "now").
    pub now: DateTime<Utc>,
}

impl Default for Spec {
    /// Issue 14's scale: 10,000,000 payments over 3 years and 10,000,000 log rows within the
    /// default 90-day retention, 50,000 accounts, ending a minute ago.
    fn default() -> Spec {
        Spec {
            transactions: 10_000_000,
            log_rows: 10_000_000,
            days: 3 * 365,
            log_days: 90,
            accounts: 50_000,
            now: Utc::now() - TimeDelta::minutes(1),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `qiwi_transaction` rows.
    pub transactions: u64,
    /// `qiwi_http_log` rows.
    pub log_rows: u64,
    /// `qiwi_webhook_attempt` rows.
    pub attempts: u64,
    /// Payments not delivered yet (`status = 0`), each with its delivery due.
    pub undelivered: u64,
    /// Seconds it took.
    pub millis: u128,
    /// The database file's size in bytes afterwards.
    pub bytes: u64,
}

/// One payment in every `FAILING_EVERY` keeps failing (the backend answers 503).
const FAILING_EVERY: u64 = 10_000;
/// One payment in every `RETRIED_EVERY` was delivered at the second attempt.
const RETRIED_EVERY: u64 = 200;
/// The newest payments still waiting after a backend outage: one in `BACKLOG_SHARE`.
const BACKLOG_SHARE: u64 = 1_000;
/// The first seeded txn_id; each next one is 1 to 7 higher.
const FIRST_TXN: u64 = 10_000_000_000;
/// The request log's headers (the Authorization secret masked as the gateway logs it).
const HEADERS: &str = r#"{"host":"pay.example.ru","user-agent":"QIWI/1.0","authorization":"Basic qiwi:***","accept":"*/*"}"#;
/// Sums QIWI customers pay most often, kopecks.
const ROUND_SUMS: [i64; 6] = [10_000, 20_000, 30_000, 50_000, 100_000, 150_000];

/// A small deterministic generator (xorshift64): the same data on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A payment of the log window: what its check and pay log rows repeat.
struct Paid {
    at: DateTime<Utc>,
    id: i64,
    code: u64,
    account: String,
    minor: i64,
    txn_date: String,
}

/// Writes `spec` into the new database file `path` (refused if it exists) and returns what
/// it wrote. Errors: the file exists, or SQLite failed (the half-written file is left).
pub fn seed(path: &Path, spec: &Spec) -> Result<Report, DbError> {
    let started = Instant::now();
    if path.exists() {
        return Err(DbError::Open {
            path: path.to_owned(),
            reason: "the file exists; the seeding tool writes only new files".into(),
        });
    }
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    super::migrations::run_with(&mut conn, &mut |_, _| {})?;
    // The chart aggregates are computed once at the end, not by a trigger per row.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
        false,
    )?;
    let indexes: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
               AND tbl_name IN ('qiwi_transaction', 'qiwi_http_log', 'qiwi_webhook_attempt')",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, _) in &indexes {
        conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
    }

    let mut report = Report::default();
    let tx = conn.transaction()?;
    let window = payments(&tx, spec, &mut report)?;
    log_rows(&tx, spec, &window, &mut report)?;
    tx.commit()?;

    for (_, sql) in &indexes {
        conn.execute_batch(sql)?;
    }
    conn.execute_batch(CHART_AGGREGATES)?;
    super::maintenance::optimize(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    drop(conn);
    report.millis = started.elapsed().as_millis();
    report.bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(report)
}

/// Migration 0007's aggregate queries: the chart tables as the triggers would have kept them.
const CHART_AGGREGATES: &str = "
INSERT INTO stats_hour (hour, payments, sum_minor)
SELECT substr(created_at, 1, 13), count(*), CAST(total(sum_minor) AS INTEGER)
FROM qiwi_transaction WHERE test = 0 GROUP BY 1;
INSERT INTO stats_hour (hour, acked)
SELECT substr(coalesce(delivered_at, last_attempt_at, created_at), 1, 13), count(*)
FROM qiwi_transaction WHERE status = 1 AND test = 0 GROUP BY 1 HAVING true
ON CONFLICT (hour) DO UPDATE SET acked = excluded.acked;
INSERT INTO stats_hour (hour, delivered, failed)
SELECT substr(created_at, 1, 13), sum(error IS NULL), sum(error IS NOT NULL)
FROM qiwi_webhook_attempt GROUP BY 1 HAVING true
ON CONFLICT (hour) DO UPDATE SET delivered = excluded.delivered, failed = excluded.failed;
INSERT INTO stats_result_hour (hour, result, answers)
SELECT substr(created_at, 1, 13), result, count(*)
FROM qiwi_http_log WHERE result IS NOT NULL GROUP BY 1, 2;
";

fn txn_date(at: DateTime<Utc>) -> String {
    // QIWI's txn_date is Moscow time (UTC+3, no daylight saving since 2014).
    (at + TimeDelta::hours(3))
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn sum_text(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Inserts the payments and their webhook attempts; returns those inside the log window.
fn payments(conn: &Connection, spec: &Spec, report: &mut Report) -> Result<Vec<Paid>, DbError> {
    let n = spec.transactions;
    let span_ms = i64::from(spec.days) * 86_400_000;
    let start = spec.now - TimeDelta::milliseconds(span_ms);
    let window_start = spec.now - TimeDelta::days(i64::from(spec.log_days));
    let step = if n == 0 { 0 } else { span_ms / n as i64 };
    let backlog_from = n - n / BACKLOG_SHARE;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut txn = conn.prepare(
        "INSERT INTO qiwi_transaction
             (id, account, code, sum, status, created_at, sum_minor, txn_date, extra,
              delivery_due_ms, attempts, last_error, last_attempt_at, delivered_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '{}', ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut attempt = conn.prepare(
        "INSERT INTO qiwi_webhook_attempt
             (transaction_id, created_at, http_status, error, duration_ms, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut window = Vec::new();
    let mut code = FIRST_TXN;
    for i in 0..n {
        let r = rng.next();
        let id = i as i64 + 1;
        let at = start + TimeDelta::milliseconds(step * i as i64 + (r % step.max(1) as u64) as i64);
        let created = super::format_time(at);
        code += 1 + r % 7;
        let account = format!("79{:09}", 10_000_000 + (r >> 24) % spec.accounts);
        let minor = if r.is_multiple_of(4) {
            1_000 + ((r >> 8) % 1_499_000) as i64
        } else {
            ROUND_SUMS[((r >> 8) % ROUND_SUMS.len() as u64) as usize]
        };
        let date = txn_date(at);
        let later = |secs: i64| super::format_time(at + TimeDelta::seconds(secs));
        if i >= backlog_from {
            // Waiting since the backend went away: due now, never tried.
            txn.execute(params![
                id,
                account,
                code.to_string(),
                minor as f64 / 100.0,
                0,
                created,
                minor,
                date,
                at.timestamp_millis(),
                0,
                None::<String>,
                None::<String>,
                None::<String>
            ])?;
            report.undelivered += 1;
        } else if i % FAILING_EVERY == FAILING_EVERY / 2 {
            // Failing ever since: eight attempts, the next one due in an hour.
            let tries = 8;
            txn.execute(params![
                id,
                account,
                code.to_string(),
                minor as f64 / 100.0,
                0,
                created,
                minor,
                date,
                spec.now.timestamp_millis() + 3_600_000,
                tries,
                "status: 503",
                later(60 * (1 << (tries - 1))),
                None::<String>
            ])?;
            for k in 0..tries {
                attempt.execute(params![
                    id,
                    later(60 * (1 << k)),
                    503,
                    "status: 503",
                    30,
                    "Service Unavailable"
                ])?;
            }
            report.attempts += tries as u64;
            report.undelivered += 1;
        } else {
            let retried = i % RETRIED_EVERY == 3;
            let delivered = later(if retried { 61 } else { 1 });
            txn.execute(params![
                id,
                account,
                code.to_string(),
                minor as f64 / 100.0,
                1,
                created,
                minor,
                date,
                None::<i64>,
                1 + i64::from(retried),
                None::<String>,
                delivered,
                delivered
            ])?;
            if retried {
                attempt.execute(params![id, later(1), None::<i64>, "timeout", 10_000, ""])?;
                report.attempts += 1;
            }
            attempt.execute(params![id, delivered, 200, None::<String>, 12, "ok"])?;
            report.attempts += 1;
        }
        report.transactions += 1;
        if at >= window_start {
            window.push(Paid {
                at,
                id,
                code,
                account,
                minor,
                txn_date: date,
            });
        }
    }
    Ok(window)
}

/// Inserts the request log in time order: a check and a pay for the newest payments of the
/// window (as many as `log_rows` allows), and between them other requests spread evenly:
/// checks of accounts that did not pay, repeated pays, and refused probes.
fn log_rows(
    conn: &Connection,
    spec: &Spec,
    window: &[Paid],
    report: &mut Report,
) -> Result<(), DbError> {
    let pairs = window.len().min((spec.log_rows / 2) as usize);
    let paid = &window[window.len() - pairs..];
    let fillers = spec.log_rows - 2 * pairs as u64;
    let window_ms = i64::from(spec.log_days) * 86_400_000;
    let window_start = spec.now - TimeDelta::milliseconds(window_ms);
    let filler_step = if fillers == 0 {
        0
    } else {
        window_ms / fillers as i64
    };
    let mut log = conn.prepare(
        "INSERT INTO qiwi_http_log
             (ip, url, method, headers, body, created_at, status, response, txn_id, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut row = |at: DateTime<Utc>,
                   method: &str,
                   query: &str,
                   status: u16,
                   response: &str,
                   txn_id: Option<String>,
                   result: Option<i64>,
                   r: u64|
     -> Result<(), DbError> {
        let (url, body) = if method == "POST" {
            ("/payment".to_owned(), query)
        } else {
            (format!("/payment?{query}"), "")
        };
        log.execute(params![
            format!("91.232.230.{}", r % 40 + 1),
            url,
            method,
            HEADERS,
            body,
            super::format_time(at),
            status,
            response,
            txn_id,
            result
        ])?;
        report.log_rows += 1;
        Ok(())
    };
    let answer = |code: u64, prv: Option<i64>, minor: Option<i64>, result: i64| {
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>\n<osmp_txn_id>{code}</osmp_txn_id>"
        );
        if let Some(p) = prv {
            s.push_str(&format!("\n<prv_txn>{p}</prv_txn>"));
        }
        if let Some(m) = minor {
            s.push_str(&format!("\n<sum>{}</sum>", sum_text(m)));
        }
        let comment = if result == 0 {
            "OK"
        } else {
            "Account not found"
        };
        s.push_str(&format!(
            "\n<result>{result}</result>\n<comment>{comment}</comment>\n</response>\n"
        ));
        s
    };
    let mut next_paid = paid.iter().peekable();
    let mut filler = 0u64;
    let mut unpaid_code = FIRST_TXN / 2;
    loop {
        let filler_at = (filler < fillers)
            .then(|| window_start + TimeDelta::milliseconds(filler_step * filler as i64));
        let paid_at = next_paid.peek().map(|p| p.at);
        let r = rng.next();
        let method = if r.is_multiple_of(50) { "POST" } else { "GET" };
        let take_filler = match (filler_at, paid_at) {
            (None, None) => break,
            (Some(f), Some(p)) => f < p,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        match (filler_at, paid_at) {
            (Some(f), _) if take_filler => {
                filler += 1;
                let kind = r % 100;
                let account = format!("79{:09}", 10_000_000 + (r >> 24) % spec.accounts);
                if kind < 2 {
                    // A probe without credentials: refused before the protocol.
                    row(
                        f,
                        "GET",
                        "command=check",
                        401,
                        "authentication required\n",
                        None,
                        None,
                        r,
                    )?;
                } else if kind < 6 {
                    // A repeated pay of a payment stored earlier (QIWI did not get the answer).
                    let p = &window[(r >> 12) as usize % window.len().max(1)];
                    let q = format!(
                        "command=pay&txn_id={}&account={}&sum={}&txn_date={}",
                        p.code,
                        p.account,
                        sum_text(p.minor),
                        p.txn_date
                    );
                    let a = answer(p.code, Some(p.id), Some(p.minor), 0);
                    row(f, method, &q, 200, &a, Some(p.code.to_string()), Some(0), r)?;
                } else {
                    // A check that did not lead to a pay: found or not found.
                    unpaid_code += 1 + r % 5;
                    let result = if kind < 30 { 5 } else { 0 };
                    let q =
                        format!("command=check&txn_id={unpaid_code}&account={account}&sum=100.00");
                    let a = answer(unpaid_code, None, None, result);
                    row(
                        f,
                        method,
                        &q,
                        200,
                        &a,
                        Some(unpaid_code.to_string()),
                        Some(result),
                        r,
                    )?;
                }
            }
            (_, Some(at)) => {
                let Some(p) = next_paid.next() else { break };
                let sum = sum_text(p.minor);
                let q = format!(
                    "command=check&txn_id={}&account={}&sum={sum}",
                    p.code, p.account
                );
                let a = answer(p.code, None, None, 0);
                let check_at = at - TimeDelta::seconds(2);
                row(
                    check_at,
                    method,
                    &q,
                    200,
                    &a,
                    Some(p.code.to_string()),
                    Some(0),
                    r,
                )?;
                let q = format!(
                    "command=pay&txn_id={}&account={}&sum={sum}&txn_date={}",
                    p.code, p.account, p.txn_date
                );
                let a = answer(p.code, Some(p.id), Some(p.minor), 0);
                row(
                    at,
                    method,
                    &q,
                    200,
                    &a,
                    Some(p.code.to_string()),
                    Some(0),
                    r,
                )?;
            }
            _ => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny seed is consistent: counts as reported, the outbox holds every undelivered
    /// payment, ids grow with time, the chart tables agree with the rows, and the gateway
    /// opens the file (WAL, every migration applied).
    #[test]
    fn a_small_seed_is_consistent_and_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.db");
        let spec = Spec {
            transactions: 12_000,
            log_rows: 4_000,
            days: 30,
            log_days: 3,
            accounts: 500,
            now: Utc::now(),
        };
        let report = seed(&path, &spec).unwrap();
        assert_eq!(report.transactions, 12_000);
        assert_eq!(report.log_rows, 4_000);
        assert!(seed(&path, &spec).is_err(), "an existing file is refused");
        let c = Connection::open(&path).unwrap();
        let one = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(one("SELECT count(*) FROM qiwi_transaction"), 12_000);
        assert_eq!(one("SELECT count(*) FROM qiwi_http_log"), 4_000);
        assert_eq!(
            one("SELECT count(*) FROM qiwi_webhook_attempt") as u64,
            report.attempts
        );
        let undelivered = one("SELECT count(*) FROM qiwi_transaction WHERE status = 0");
        assert_eq!(undelivered as u64, report.undelivered);
        assert!(undelivered > 0);
        assert_eq!(
            one("SELECT count(*) FROM qiwi_transaction WHERE delivery_due_ms IS NOT NULL"),
            undelivered,
            "every undelivered payment has its delivery due"
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM qiwi_transaction AS a JOIN qiwi_transaction AS b
                 ON b.id = a.id + 1 WHERE b.created_at < a.created_at OR b.code <= a.code"
            ),
            0,
            "ids, times and txn_ids grow together"
        );
        assert_eq!(
            one("SELECT sum(payments) FROM stats_hour"),
            12_000,
            "the charts count every payment"
        );
        assert_eq!(
            one("SELECT sum(delivered) + sum(failed) FROM stats_hour") as u64,
            report.attempts
        );
        assert_eq!(
            one("SELECT sum(answers) FROM stats_result_hour"),
            one("SELECT count(*) FROM qiwi_http_log WHERE result IS NOT NULL")
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM qiwi_http_log WHERE url LIKE '%command=pay%'
                 AND txn_id NOT IN (SELECT code FROM qiwi_transaction)"
            ),
            0,
            "every logged pay is a stored payment"
        );
        let integrity: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        drop(c);
        let db = super::super::Db::open(&path).unwrap();
        drop(db);
        let c = Connection::open(&path).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fresh = dir.path().join("fresh.db");
        drop(super::super::Db::open(&fresh).unwrap());
        let schema = "SELECT group_concat(name || ':' || coalesce(sql, ''), '|')
                      FROM (SELECT name, sql FROM sqlite_master
                            WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name)";
        assert_eq!(
            one_text(&c, schema),
            one_text(&Connection::open(&fresh).unwrap(), schema),
            "the same tables, indexes and triggers as a database the gateway made"
        );
    }

    fn one_text(c: &Connection, sql: &str) -> String {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}
