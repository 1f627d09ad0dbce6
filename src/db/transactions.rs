//! `qiwi_transaction`: one row per payment, which is also the webhook outbox entry.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbError;

/// A payment to store, already validated by the protocol layer.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// QIWI's `txn_id` (column `code`).
    pub code: String,
    /// The customer's account.
    pub account: String,
    /// The exact sum in minor units (kopecks).
    pub sum_minor: i64,
    /// QIWI's `txn_date` as received.
    pub txn_date: String,
    /// The other request parameters, as a JSON object.
    pub extra: String,
}

/// A stored payment as the protocol answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Our id, `prv_txn` in answers.
    pub id: i64,
    /// The stored account.
    pub account: String,
    /// The stored sum in minor units.
    pub sum_minor: i64,
}

/// What storing a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A new row was stored; its webhook delivery is due.
    Created(Stored),
    /// The same `txn_id` with the same account and sum was stored before: nothing changed.
    Repeated(Stored),
    /// The `txn_id` was stored before with another account or sum: nothing changed.
    Conflict(Stored),
    /// New payments are refused (maintenance) and this one was not stored before.
    Refused,
}

/// Stores `p` unless its `code` is known, in which case the earlier row decides the outcome.
/// The new row's webhook delivery is due at `now_ms` in the same transaction, so a payment
/// never exists without its pending delivery.
pub fn store(
    conn: &Connection,
    p: &NewPayment,
    accept_new: bool,
    now_text: &str,
    now_ms: i64,
) -> Result<StoreOutcome, DbError> {
    if accept_new {
        // The common case first: a new txn_id is one insert; only a known one (the unique
        // index refuses it, and `DO NOTHING` leaves the row as it was) needs the lookup below.
        let inserted = conn
            .prepare_cached(
                "INSERT INTO qiwi_transaction
                     (account, code, sum, status, created_at, sum_minor, txn_date, extra,
                      delivery_due_ms)
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (code) DO NOTHING",
            )?
            .execute(params![
                p.account,
                p.code,
                // The float column is the original product's; sum_minor is exact.
                p.sum_minor as f64 / 100.0,
                now_text,
                p.sum_minor,
                p.txn_date,
                p.extra,
                now_ms
            ])?;
        if inserted == 1 {
            return Ok(StoreOutcome::Created(Stored {
                id: conn.last_insert_rowid(),
                account: p.account.clone(),
                sum_minor: p.sum_minor,
            }));
        }
    }
    let existing = conn
        .prepare_cached("SELECT id, account, sum_minor FROM qiwi_transaction WHERE code = ?1")?
        .query_row([&p.code], |r| {
            Ok(Stored {
                id: r.get(0)?,
                account: r.get(1)?,
                sum_minor: r.get(2)?,
            })
        })
        .optional()?;
    Ok(match existing {
        Some(s) if s.account == p.account && s.sum_minor == p.sum_minor => {
            StoreOutcome::Repeated(s)
        }
        Some(s) => StoreOutcome::Conflict(s),
        // Not stored before: refused while new payments are off.
        None => StoreOutcome::Refused,
    })
}

/// Makes webhook deliveries due at `now_ms`: of one transaction (delivered or not: it is sent
/// once more), or with `None` of undelivered ones: the next `CHUNK` of them after row
/// `after` (see [`super::Db::make_due`], which walks them all without holding the writer).
/// Returns how many were made due, and the last row id touched.
pub fn make_due(
    conn: &Connection,
    id: Option<i64>,
    after: i64,
    now_ms: i64,
) -> Result<(usize, i64), DbError> {
    match id {
        Some(id) => {
            let n = conn.execute(
                "UPDATE qiwi_transaction SET delivery_due_ms = ?1 WHERE id = ?2",
                params![now_ms, id],
            )?;
            Ok((n, id))
        }
        None => {
            let ids: Vec<i64> = conn
                .prepare_cached(
                    "UPDATE qiwi_transaction SET delivery_due_ms = ?1
                     WHERE id IN (SELECT id FROM qiwi_transaction
                                  WHERE status = 0 AND id > ?2 ORDER BY id LIMIT ?3)
                     RETURNING id",
                )?
                .query_map(params![now_ms, after, CHUNK as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok((ids.len(), ids.iter().copied().max().unwrap_or(after)))
        }
    }
}

/// Rows a bulk resend updates per writer job, so payments never wait behind a huge UPDATE.
pub const CHUNK: usize = 1000;
