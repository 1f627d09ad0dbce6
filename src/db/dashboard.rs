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
    /// Undelivered transactions.
    pub pending: i64,
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
    let mut totals = [Totals::default(); 3];
    for (t, s) in totals.iter_mut().zip(since) {
        *t = conn
            .prepare_cached(&format!(
                "SELECT count(*), {}
                 FROM qiwi_transaction INDEXED BY qiwi_transaction_created
                 WHERE created_at >= ?1 AND test = 0",
                split_sum("sum_minor")
            ))?
            .query_row([s], |r| {
                Ok(Totals {
                    count: r.get(0)?,
                    sum_minor: joined_sum(r, 1)?,
                })
            })?;
    }
    let (pending, oldest_pending) = conn
        .prepare_cached(
            "SELECT count(*), min(created_at)
             FROM qiwi_transaction INDEXED BY qiwi_transaction_status WHERE status = 0",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let failing = conn
        .prepare_cached(
            "SELECT count(*) FROM qiwi_transaction INDEXED BY qiwi_transaction_failing
             WHERE status = 0 AND attempts > 0",
        )?
        .query_row([], |r| r.get(0))?;
    let filter = TxnFilter {
        state: Some(TxnState::Failing),
        ..TxnFilter::default()
    };
    let (failing_rows, _) = export_batch(conn, &filter, None, DASHBOARD_FAILING)?;
    let last_request = conn
        .prepare_cached("SELECT max(created_at) FROM qiwi_http_log")?
        .query_row([], |r| r.get(0))?;
    // Typed numbers (200-299, validated by the configuration), so written into the SQL.
    let accepted = accepted
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let unaccepted_2xx = conn
        .prepare_cached(&format!(
            "SELECT http_status, created_at FROM (
                 SELECT http_status, created_at FROM qiwi_webhook_attempt
                 ORDER BY id DESC LIMIT ?1)
             WHERE http_status BETWEEN 200 AND 299 AND http_status NOT IN ({accepted})
             LIMIT 1"
        ))?
        .query_row([RECENT_ATTEMPTS], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(Dashboard {
        unaccepted_2xx,
        totals,
        pending,
        oldest_pending,
        failing,
        failing_rows,
        last_request,
    })
}
