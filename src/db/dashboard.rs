//! The dashboard's figures, read from `qiwi_transaction` and `qiwi_webhook_attempt`.

use rusqlite::{Connection, OptionalExtension};

use super::DbError;
use super::pager::{joined_sum, split_sum};
use super::transactions::{TxnFilter, TxnRow, TxnState, export_batch};

/// Count and sum of payments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// How many.
    pub count: i64,
    /// Their exact sum in kopecks: `i128`, as 1,025 payments of the largest sum already exceed
    /// `i64` (issue 19.5).
    pub sum_minor: i128,
}

/// The dashboard's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    /// Payments since `since[0]`, `since[1]`, `since[2]` (today, 7 days, 30 days).
    pub totals: [Totals; 3],
    /// Undelivered transactions (test payments left out), counted up to [`BACKLOG_COUNTED`].
    pub pending: i64,
    /// `true` when more than [`BACKLOG_COUNTED`] are undelivered: `pending` is then that bound.
    pub pending_capped: bool,
    /// `created_at` of the oldest undelivered transaction.
    pub oldest_pending: Option<String>,
    /// Undelivered transactions with at least one failed attempt.
    pub failing: i64,
    /// The most recent of those.
    pub failing_rows: Vec<TxnRow>,
    /// `created_at` of the last request to `/payment`.
    pub last_request: Option<String>,
    /// The newest of the last [`RECENT_ATTEMPTS`] webhook attempts that got a 2xx the worker
    /// does not count as delivered (not in `webhook_success_statuses`): its status and UTC time.
    pub unaccepted_2xx: Option<(i64, String)>,
}

/// The dashboard counts undelivered payments up to this many and says "more than" beyond: the
/// count walks the status index, about 50 ns an entry (37 ms for 775,880 undelivered at
/// 10,000,000 payments, `bench/run scale`), so a receiver down for weeks must not make the
/// page slow when it matters most.
pub const BACKLOG_COUNTED: i64 = 100_000;

/// How many of the newest webhook attempts the dashboard looks at for answers such as 204.
pub const RECENT_ATTEMPTS: i64 = 1000;

/// How many failing deliveries the dashboard lists.
const DASHBOARD_FAILING: usize = 10;

/// The dashboard's figures; `since` are the UTC starts of today, 7 days and 30 days ago.
/// `accepted` are the statuses the worker counts as delivered (`webhook_success_statuses`):
/// any other 2xx among the newest attempts is reported in [`Dashboard::unaccepted_2xx`].
pub fn dashboard(
    conn: &Connection,
    since: [&str; 3],
    accepted: &[u16],
) -> Result<Dashboard, DbError> {
    // One read transaction: the aggregates, the partial hours and the backlog are one snapshot.
    let tx = conn.unchecked_transaction()?;
    let mut totals = [Totals::default(); 3];
    for (t, s) in totals.iter_mut().zip(since) {
        *t = totals_since(&tx, s)?;
    }
    // Test payments are not part of the backlog: they are the operator's own (issue 16.4).
    let (pending, pending_capped) = backlog_count(&tx, BACKLOG_COUNTED)?;
    // The oldest is the first non-test row in the status index's time order.
    let oldest_pending = tx
        .prepare_cached(
            "SELECT created_at FROM qiwi_transaction INDEXED BY qiwi_transaction_status
             WHERE status = 0 AND test = 0 ORDER BY created_at LIMIT 1",
        )?
        .query_row([], |r| r.get(0))
        .optional()?;
    let failing = tx
        .prepare_cached(
            "SELECT count(*) FROM qiwi_transaction INDEXED BY qiwi_transaction_failing
             WHERE status = 0 AND attempts > 0 AND test = 0",
        )?
        .query_row([], |r| r.get(0))?;
    let filter = TxnFilter {
        state: Some(TxnState::Failing),
        test: Some(false),
        ..TxnFilter::default()
    };
    let (failing_rows, _) = export_batch(&tx, &filter, None, DASHBOARD_FAILING)?;
    let last_request = tx
        .prepare_cached("SELECT max(created_at) FROM qiwi_http_log")?
        .query_row([], |r| r.get(0))?;
    // Typed numbers (200-299, validated by the configuration), so written into the SQL.
    let accepted = accepted
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let unaccepted_2xx = tx
        .prepare_cached(&format!(
            "SELECT http_status, created_at FROM (
                 SELECT http_status, created_at FROM qiwi_webhook_attempt
                 ORDER BY id DESC LIMIT ?1)
             WHERE http_status BETWEEN 200 AND 299 AND http_status NOT IN ({accepted})
             LIMIT 1"
        ))?
        .query_row([RECENT_ATTEMPTS], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    drop(tx);
    Ok(Dashboard {
        unaccepted_2xx,
        totals,
        pending,
        pending_capped,
        oldest_pending,
        failing,
        failing_rows,
        last_request,
    })
}

/// Undelivered non-test payments, counted up to `cap`: `(count, false)`, or `(cap, true)` when
/// there are more. Counted on the status index alone, then the few pending test payments
/// (their partial index) taken off: testing `test = 0` row by row read every pending row
/// (55 ms for a backlog of 175,000 at 10,000,000 payments). The index walk stops after `cap`
/// plus the pending test payments plus one entries.
pub fn backlog_count(conn: &Connection, cap: i64) -> Result<(i64, bool), DbError> {
    let tests: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM qiwi_transaction INDEXED BY qiwi_transaction_test
             WHERE test = 1 AND status = 0",
        )?
        .query_row([], |r| r.get(0))?;
    let walked: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM qiwi_transaction INDEXED BY qiwi_transaction_status
                                   WHERE status = 0 LIMIT ?1)",
        )?
        .query_row([cap.saturating_add(tests).saturating_add(1)], |r| r.get(0))?;
    let pending = walked - tests;
    Ok(if pending > cap {
        (cap, true)
    } else {
        (pending, false)
    })
}

/// The largest hourly sum in `stats_hour` taken as exact: 2^53 kopecks. Migration 0007 filled
/// the table with `total()` (a double, exact up to 2^53 for sums of non-negative kopecks) and
/// the trigger's `+` turns a sum past `i64` into a REAL: such an hour is counted row by row.
const EXACT_HOUR_SUM: i64 = 1 << 53;

/// Count and exact sum of the non-test payments with `created_at >= since` (UTC,
/// `YYYY-MM-DD HH:MM:SS`). Whole UTC hours come from the per-hour aggregates the triggers of
/// migration 0007 keep (`stats_hour`, test payments left out as here); the hour `since` falls
/// inside, when it is not on an hour boundary (a display time zone such as Asia/Kolkata), and
/// any hour whose aggregate may not be exact are read from `qiwi_transaction` by `created_at`.
/// So the work is at most 720 aggregate rows plus one hour of payments, whatever the window.
pub fn totals_since(conn: &Connection, since: &str) -> Result<Totals, DbError> {
    let Some(hour) = since.get(..13) else {
        return scan_totals(conn, since, None);
    };
    let whole = since.len() == 13 || since[13..].trim_start_matches([':', '0', '.']).is_empty();
    let mut total = if whole {
        Totals::default()
    } else {
        // The partial first hour: `since` up to the next hour.
        match next_hour(hour) {
            Some(next) => scan_totals(conn, since, Some(&next))?,
            None => return scan_totals(conn, since, None),
        }
    };
    let op = if whole { ">=" } else { ">" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT hour, payments, sum_minor, typeof(sum_minor) = 'integer'
         FROM stats_hour WHERE hour {op} ?1 AND payments > 0"
    ))?;
    let mut rows = stmt.query([hour])?;
    while let Some(r) = rows.next()? {
        let h: String = r.get(0)?;
        let integer: bool = r.get(3)?;
        let sum: Option<i64> = if integer { r.get(2)? } else { None };
        match sum {
            Some(sum) if (0..=EXACT_HOUR_SUM).contains(&sum) => {
                total.count += r.get::<_, i64>(1)?;
                total.sum_minor += i128::from(sum);
            }
            _ => {
                let Some(next) = next_hour(&h) else {
                    return scan_totals(conn, since, None);
                };
                let t = scan_totals(conn, &h, Some(&next))?;
                total.count += t.count;
                total.sum_minor += t.sum_minor;
            }
        }
    }
    Ok(total)
}

/// `YYYY-MM-DD HH` of the hour after `hour` (same shape); `None` for another shape.
fn next_hour(hour: &str) -> Option<String> {
    let t = chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%d %H:%M").ok()?;
    Some(
        (t + chrono::TimeDelta::hours(1))
            .format("%Y-%m-%d %H")
            .to_string(),
    )
}

/// Count and exact sum of the non-test payments with `from <= created_at < until` read row by
/// row on the `created_at` index (`until` absent: no upper bound).
pub fn scan_totals(conn: &Connection, from: &str, until: Option<&str>) -> Result<Totals, DbError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT count(*), {}
             FROM qiwi_transaction INDEXED BY qiwi_transaction_created
             WHERE created_at >= ?1 AND (?2 IS NULL OR created_at < ?2) AND test = 0",
            split_sum("sum_minor")
        ))?
        .query_row(rusqlite::params![from, until], |r| {
            Ok(Totals {
                count: r.get(0)?,
                sum_minor: joined_sum(r, 1)?,
            })
        })?)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
    use chrono_tz::Tz;

    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        super::super::migrations::run(&mut conn).unwrap();
        conn.pragma_update(None, "synchronous", "OFF").unwrap();
        (dir, conn)
    }

    fn pay(conn: &Connection, code: &str, at: &str, sum_minor: i64, status: i64) {
        conn.execute(
            "INSERT INTO qiwi_transaction (account, code, sum, created_at, sum_minor, txn_date, status)
             VALUES ('a', ?1, ?2, ?3, ?4, '20240101000000', ?5)",
            rusqlite::params![code, sum_minor as f64 / 100.0, at, sum_minor, status],
        )
        .unwrap();
    }

    fn test_pay(conn: &Connection, code: &str, at: &str, sum_minor: i64) {
        conn.execute(
            "INSERT INTO test_payment (code, account, sum_minor, created_at, username)
             VALUES (?1, 'a', ?2, ?3, 'admin')",
            rusqlite::params![code, sum_minor, at],
        )
        .unwrap();
        pay(conn, code, at, sum_minor, 0);
    }

    /// The cards' totals from the hourly aggregates equal the direct scan of the window, for
    /// local midnights of whole-hour zones (Moscow), a :30 zone (Kolkata, whose partial first
    /// hour is scanned), a :45 zone (Kathmandu), odd minutes and seconds; test payments and an
    /// hour whose aggregate overflowed to a REAL are handled the same way.
    #[test]
    fn the_cards_totals_from_the_hourly_aggregates_equal_the_direct_scan() {
        let (_dir, conn) = db();
        let start = Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut n = 0;
        let mut t = start;
        while t < start + TimeDelta::days(40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every 1 to 50 minutes, seconds included; sums from 1 kopeck to 10,000 roubles.
            t += TimeDelta::seconds((x % 3000) as i64 + 1);
            let at = crate::db::format_time(t);
            n += 1;
            if n % 37 == 0 {
                test_pay(&conn, &format!("t{n}"), &at, (x % 1_000_000) as i64 + 1);
            } else {
                pay(
                    &conn,
                    &n.to_string(),
                    &at,
                    (x % 1_000_000) as i64 + 1,
                    (n % 3 == 0) as i64,
                );
            }
        }
        // An hour whose sum passes i64: the trigger's `+` stores a REAL there.
        pay(&conn, "big1", "2024-03-05 10:15:00", i64::MAX, 1);
        pay(&conn, "big2", "2024-03-05 10:20:00", i64::MAX, 1);
        let kind: String = conn
            .query_row(
                "SELECT typeof(sum_minor) FROM stats_hour WHERE hour = '2024-03-05 10'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "real");
        let mut checked = 0;
        for zone in [
            "UTC",
            "Europe/Moscow",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "America/St_Johns",
        ] {
            let tz: Tz = zone.parse().unwrap();
            for day in (2..40).step_by(3) {
                let d = NaiveDate::from_ymd_opt(2024, 2, 1).unwrap() + TimeDelta::days(day);
                let local = tz
                    .from_local_datetime(&d.and_time(NaiveTime::MIN))
                    .earliest()
                    .unwrap();
                let since = crate::db::format_time(local.to_utc());
                let direct = scan_totals(&conn, &since, None).unwrap();
                assert_eq!(
                    totals_since(&conn, &since).unwrap(),
                    direct,
                    "{zone} {since}"
                );
                assert!(direct.count > 0 || day > 35);
                checked += 1;
            }
        }
        for since in [
            "2024-02-10 13:07:59",
            "2024-03-05 10:17:00",
            "2024-03-05 10:00:00",
            "2024-03-05 09:59:59",
            "2030-01-01 00:00:00",
        ] {
            assert_eq!(
                totals_since(&conn, since).unwrap(),
                scan_totals(&conn, since, None).unwrap(),
                "{since}"
            );
            checked += 1;
        }
        assert_eq!(checked, 5 * 13 + 5);
        // The REAL hour is in the window and counted exactly.
        let t = totals_since(&conn, "2024-03-05 00:00:00").unwrap();
        assert!(t.sum_minor > 2 * i128::from(i64::MAX));
    }

    #[test]
    fn test_payments_are_not_in_the_backlog() {
        let (_dir, conn) = db();
        pay(&conn, "1", "2024-03-05 10:15:00", 100, 0);
        test_pay(&conn, "2", "2024-03-05 10:10:00", 200);
        test_pay(&conn, "3", "2024-03-05 10:11:00", 300);
        // Delivered ones, test or not, are not in the backlog either.
        pay(&conn, "4", "2024-03-05 10:01:00", 400, 1);
        test_pay(&conn, "5", "2024-03-05 10:02:00", 500);
        conn.execute(
            "UPDATE qiwi_transaction SET status = 1 WHERE code = '5'",
            [],
        )
        .unwrap();
        conn.execute("UPDATE qiwi_transaction SET attempts = 1", [])
            .unwrap();
        let d = dashboard(&conn, ["2024-03-05 00:00:00"; 3], &[200]).unwrap();
        assert_eq!(d.pending, 1);
        assert!(!d.pending_capped);
        assert_eq!(d.oldest_pending.as_deref(), Some("2024-03-05 10:15:00"));
        assert_eq!(d.failing, 1);
        assert_eq!(d.failing_rows.len(), 1);
        assert_eq!(
            d.totals[0],
            Totals {
                count: 2,
                sum_minor: 500
            }
        );
    }

    #[test]
    fn the_backlog_is_counted_up_to_its_cap_test_payments_left_out() {
        let (_dir, conn) = db();
        for i in 0..5 {
            pay(&conn, &format!("p{i}"), "2024-03-05 10:15:00", 100, 0);
        }
        pay(&conn, "done", "2024-03-05 10:15:00", 100, 1);
        test_pay(&conn, "t1", "2024-03-05 10:10:00", 200);
        test_pay(&conn, "t2", "2024-03-05 10:11:00", 300);
        // Exact up to the cap, the two pending test payments never counted against it...
        assert_eq!(backlog_count(&conn, 5).unwrap(), (5, false));
        assert_eq!(backlog_count(&conn, 100).unwrap(), (5, false));
        // ...and "more than the cap" beyond it.
        assert_eq!(backlog_count(&conn, 4).unwrap(), (4, true));
        assert_eq!(backlog_count(&conn, 0).unwrap(), (0, true));
    }
}
