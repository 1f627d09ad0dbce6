//! The dashboard charts' figures, read from the per-hour aggregates that triggers keep
//! (migration 0007): at most 60 x 24 rows per chart, whatever the size of the tables.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;

use super::DbError;

/// One hour's (or day's) figures. Test payments are not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    /// `YYYY-MM-DD HH` for an hour, `YYYY-MM-DD` for a day, in the display time zone.
    pub key: String,
    /// Payments stored.
    pub payments: i64,
    /// Their sum, kopecks.
    pub sum_minor: i64,
    /// Payments whose webhook was first acknowledged in this period.
    pub acked: i64,
    /// Webhook attempts that succeeded.
    pub delivered: i64,
    /// Webhook attempts that failed.
    pub failed: i64,
}

/// Everything the charts draw.
#[derive(Debug, Clone, Default)]
pub struct ChartData {
    /// The last 48 hours, oldest first, the current hour last; empty hours included.
    pub hours: Vec<Bucket>,
    /// The last 60 days, oldest first, today last; empty days included.
    pub days: Vec<Bucket>,
    /// Protocol answers in the last 48 hours by result code: `(result, answers)`, by code.
    pub results: Vec<(i64, i64)>,
}

/// Hours the hourly charts show.
pub const HOURS: i64 = 48;
/// Days the daily chart shows.
pub const DAYS: i64 = 60;

/// Reads the charts' figures for the periods ending at `now`, in the display time zone `tz`:
/// hours are the UTC hours of the aggregates labelled with their local start (exact for
/// whole-hour offsets such as Europe/Moscow), days are local calendar days made of the hours
/// that fall in them.
pub fn chart_data(conn: &Connection, now: DateTime<Utc>, tz: Tz) -> Result<ChartData, DbError> {
    let hour0 = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let utc_key = |t: DateTime<Utc>| t.format("%Y-%m-%d %H").to_string();
    let hour_starts: Vec<DateTime<Utc>> = (0..HOURS)
        .rev()
        .map(|i| hour0 - TimeDelta::hours(i))
        .collect();
    let index: HashMap<String, usize> = hour_starts
        .iter()
        .enumerate()
        .map(|(i, t)| (utc_key(*t), i))
        .collect();
    let mut hours: Vec<Bucket> = hour_starts
        .iter()
        .map(|t| Bucket {
            key: t.with_timezone(&tz).format("%Y-%m-%d %H").to_string(),
            ..Bucket::default()
        })
        .collect();

    let today = now.with_timezone(&tz).date_naive();
    let day_list: Vec<NaiveDate> = (0..DAYS)
        .rev()
        .map(|i| today - TimeDelta::days(i))
        .collect();
    let mut days: Vec<Bucket> = day_list
        .iter()
        .map(|d| Bucket {
            key: d.format("%Y-%m-%d").to_string(),
            ..Bucket::default()
        })
        .collect();
    // The UTC hour in which the first local day starts (a day before, to be safe across
    // offsets): every hour read is then placed by its own local date.
    let first = utc_key(
        tz.from_local_datetime(&day_list[0].and_time(NaiveTime::MIN))
            .earliest()
            .map_or(now - TimeDelta::days(DAYS + 1), |t| t.with_timezone(&Utc))
            - TimeDelta::hours(1),
    );
    let mut stmt = conn.prepare_cached(
        // The trigger's `+` turns an hour's sum into a REAL past i64 (92 trillion roubles):
        // the chart saturates there instead of failing the dashboard. The cards' totals are
        // exact (i128, `db::dashboard::dashboard`).
        "SELECT hour, payments, CAST(sum_minor AS INTEGER), acked, delivered, failed
         FROM stats_hour WHERE hour >= ?1 ORDER BY hour",
    )?;
    let rows = stmt.query_map([&first], bucket)?;
    for row in rows {
        let row = row?;
        if let Some(&i) = index.get(&row.key) {
            hours[i] = Bucket {
                key: hours[i].key.clone(),
                ..row.clone()
            };
        }
        let Ok(start) = NaiveDateTime::parse_from_str(&format!("{}:00", row.key), "%Y-%m-%d %H:%M")
        else {
            continue;
        };
        let local = Utc
            .from_utc_datetime(&start)
            .with_timezone(&tz)
            .date_naive();
        if let Some(d) = days
            .iter_mut()
            .rev()
            .find(|b| b.key == local.format("%Y-%m-%d").to_string())
        {
            d.payments += row.payments;
            d.sum_minor = d.sum_minor.saturating_add(row.sum_minor);
            d.acked += row.acked;
            d.delivered += row.delivered;
            d.failed += row.failed;
        }
    }

    let results = conn
        .prepare_cached(
            "SELECT result, sum(answers) FROM stats_result_hour
             WHERE hour >= ?1 GROUP BY result ORDER BY result",
        )?
        .query_map([utc_key(hour_starts[0])], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(ChartData {
        hours,
        days,
        results,
    })
}

fn bucket(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bucket> {
    Ok(Bucket {
        key: r.get(0)?,
        payments: r.get(1)?,
        sum_minor: r.get(2)?,
        acked: r.get(3)?,
        delivered: r.get(4)?,
        failed: r.get(5)?,
    })
}

/// The webhook backlog (undelivered payments) at the end of each hour of `hours`, worked
/// back from `pending_now`: each later hour added its payments and removed its acknowledged
/// ones. Same order as `hours`.
pub fn backlog(hours: &[Bucket], pending_now: i64) -> Vec<i64> {
    let mut out = vec![0; hours.len()];
    let mut b = pending_now;
    for (i, h) in hours.iter().enumerate().rev() {
        out[i] = b.max(0);
        b -= h.payments - h.acked;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
        super::super::migrations::run(&mut conn).unwrap();
        (dir, conn)
    }

    fn pay(conn: &Connection, code: &str, at: &str, sum_minor: i64) {
        conn.execute(
            "INSERT INTO qiwi_transaction (account, code, sum, created_at, sum_minor, txn_date)
             VALUES ('a', ?1, ?2, ?3, ?4, '20240101000000')",
            rusqlite::params![code, sum_minor as f64 / 100.0, at, sum_minor],
        )
        .unwrap();
    }

    #[test]
    fn the_triggers_count_payments_attempts_and_answers_but_not_test_payments() {
        let (_dir, conn) = db();
        let now = DateTime::parse_from_rfc3339("2024-03-10T12:30:00Z")
            .unwrap()
            .to_utc();
        pay(&conn, "1", "2024-03-10 12:01:00", 1000);
        pay(&conn, "2", "2024-03-10 12:59:59", 250);
        pay(&conn, "3", "2024-03-09 23:00:00", 100);
        pay(&conn, "4", "2024-01-01 00:00:00", 7); // beyond 60 days
        conn.execute(
            "INSERT INTO test_payment (code, account, sum_minor, created_at, username)
             VALUES ('5', 'a', 500, '2024-03-10 12:00:00', 'admin')",
            [],
        )
        .unwrap();
        pay(&conn, "5", "2024-03-10 12:02:00", 500);
        let test: i64 = conn
            .query_row(
                "SELECT test FROM qiwi_transaction WHERE code = '5'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(test, 1, "the reserved txn_id is marked a test payment");
        for (txn, err) in [(1, None), (2, Some("HTTP 500")), (5, None)] {
            conn.execute(
                "INSERT INTO qiwi_webhook_attempt (transaction_id, created_at, error, duration_ms)
                 VALUES ((SELECT id FROM qiwi_transaction WHERE code = ?1),
                         '2024-03-10 12:10:00', ?2, 5)",
                rusqlite::params![txn.to_string(), err],
            )
            .unwrap();
        }
        conn.execute(
            "UPDATE qiwi_transaction SET status = 1, delivered_at = '2024-03-10 12:10:00'
             WHERE code IN ('1', '5')",
            [],
        )
        .unwrap();
        for (result, txn) in [(0, "1"), (0, "2"), (300, "x"), (0, "5")] {
            conn.execute(
                "INSERT INTO qiwi_http_log (ip, url, method, headers, created_at, status,
                                            txn_id, result)
                 VALUES ('1.2.3.4', '/payment', 'GET', '{}', '2024-03-10 12:00:00', 200, ?1, ?2)",
                rusqlite::params![txn, result],
            )
            .unwrap();
        }

        let d = chart_data(&conn, now, Tz::UTC).unwrap();
        assert_eq!(d.hours.len(), 48);
        assert_eq!(d.days.len(), 60);
        let last = d.hours.last().unwrap();
        assert_eq!(last.key, "2024-03-10 12");
        assert_eq!(
            (
                last.payments,
                last.sum_minor,
                last.acked,
                last.delivered,
                last.failed
            ),
            (2, 1250, 1, 1, 1)
        );
        let eleven_pm = d.hours.iter().find(|b| b.key == "2024-03-09 23").unwrap();
        assert_eq!(eleven_pm.payments, 1);
        assert_eq!(d.hours[0].key, "2024-03-08 13");
        let today = d.days.last().unwrap();
        assert_eq!((today.key.as_str(), today.payments), ("2024-03-10", 2));
        assert_eq!(d.days.iter().map(|b| b.payments).sum::<i64>(), 3);
        assert_eq!(d.results, vec![(0, 2), (300, 1)]);

        // The same hours in Moscow time (UTC+3): labelled with their local start, and the
        // payment of 23:xx UTC on the 9th belongs to the local 10th.
        let m = chart_data(&conn, now, chrono_tz::Europe::Moscow).unwrap();
        assert_eq!(m.hours.last().unwrap().key, "2024-03-10 15");
        assert_eq!(m.hours.last().unwrap().payments, 2);
        assert!(
            m.hours
                .iter()
                .any(|b| b.key == "2024-03-10 02" && b.payments == 1)
        );
        let today = m.days.last().unwrap();
        assert_eq!((today.key.as_str(), today.payments), ("2024-03-10", 3));
        assert_eq!(m.days.iter().map(|b| b.payments).sum::<i64>(), 3);

        // Three undelivered now (codes 2, 3, 4). At the end of 11:00, 2 had not arrived and
        // 1 (acknowledged at 12:10) had not either: 3 and 4 waited. Before 3 arrived, only 4.
        let b = backlog(&d.hours, 3);
        assert_eq!(b[47], 3);
        assert_eq!(b[46], 2);
        let i23 = d
            .hours
            .iter()
            .position(|h| h.key == "2024-03-09 23")
            .unwrap();
        assert_eq!(b[i23], 2);
        assert_eq!(b[i23 - 1], 1);
    }
}

#[cfg(test)]
mod plan {
    use super::*;

    /// The charts' cost does not grow with the tables: every read is a range of the
    /// aggregates' primary key, never a scan.
    #[test]
    fn the_chart_queries_search_the_aggregates_by_key() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::run(&mut conn).unwrap();
        for sql in [
            "SELECT hour, payments FROM stats_hour WHERE hour >= '2024'",
            "SELECT substr(hour, 1, 10), sum(payments) FROM stats_hour WHERE hour >= '2024' GROUP BY 1",
        ] {
            let plan: String = conn
                .query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [], |r| r.get(3))
                .unwrap();
            assert!(
                plan.contains("SEARCH stats_hour USING PRIMARY KEY"),
                "{sql}: {plan}"
            );
        }
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT result, sum(answers) FROM stats_result_hour
                 WHERE hour >= '2024' GROUP BY result",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(
            plan.contains("SEARCH stats_result_hour USING PRIMARY KEY"),
            "{plan}"
        );
    }
}
