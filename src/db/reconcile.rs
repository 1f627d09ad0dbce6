//! `reconciliation` and `reconciliation_line`: stored reports; and the reads a reconciliation
//! makes of `qiwi_transaction` (by the unique index on `code`, in batches).

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::DbError;
use crate::reconcile::{Difference, Kind, Payment, Payments, Report, Summary};

/// Differing lines written in one writer job, so a long report never holds up pays.
pub const WRITE_CHUNK: usize = 1_000;

/// [`Payments`] read from a (read-only) connection.
pub struct Stored<'c>(pub &'c Connection);

fn payment(r: &Row<'_>) -> rusqlite::Result<Payment> {
    Ok(Payment {
        id: r.get(0)?,
        code: r.get(1)?,
        account: r.get(2)?,
        sum_minor: r.get(3)?,
        txn_date: r.get(4)?,
    })
}

impl Payments for Stored<'_> {
    type Error = DbError;

    // Test payments (admin UI) are left out: QIWI never counted them.
    fn find(&mut self, txn_ids: &[&str]) -> Result<Vec<Payment>, DbError> {
        let marks = vec!["?"; txn_ids.len()].join(",");
        // Cached per batch size: all batches but the last have the same.
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT id, code, account, sum_minor, txn_date FROM qiwi_transaction
             WHERE code IN ({marks}) AND test = 0"
        ))?;
        let rows = stmt.query_map(params_from_iter(txn_ids), payment)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn in_period(
        &mut self,
        from: &str,
        to: &str,
        each: &mut dyn FnMut(Payment),
    ) -> Result<(), DbError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, code, account, sum_minor, txn_date FROM qiwi_transaction
             WHERE txn_date BETWEEN ?1 AND ?2 AND test = 0",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        while let Some(r) = rows.next()? {
            each(payment(r)?);
        }
        Ok(())
    }
}

/// A stored reconciliation as the list shows it.
#[derive(Debug, Clone)]
pub struct StoredReport {
    /// Its id.
    pub id: i64,
    /// When it ran, UTC.
    pub created_at: String,
    /// The file's name.
    pub file_name: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// `agrees` or `N differences`.
    pub verdict: String,
    /// How many differences.
    pub differences: i64,
}

fn stored(r: &Row<'_>) -> rusqlite::Result<StoredReport> {
    Ok(StoredReport {
        id: r.get(0)?,
        created_at: r.get(1)?,
        file_name: r.get(2)?,
        sha256: r.get(3)?,
        verdict: r.get(4)?,
        differences: r.get(5)?,
    })
}

/// Inserts a reconciliation's row (not its lines) and returns its id.
pub fn insert(
    conn: &Connection,
    file_name: &str,
    sha256: &str,
    summary: &Summary,
) -> Result<i64, DbError> {
    let json = serde_json::to_string(summary).map_err(|e| DbError::Commit(e.to_string()))?;
    conn.execute(
        "INSERT INTO reconciliation (created_at, file_name, sha256, verdict, differences, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            super::now_text(),
            file_name,
            sha256,
            summary.verdict(),
            i64::try_from(summary.difference_count()).unwrap_or(i64::MAX),
            json
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Inserts differing lines of reconciliation `id`.
pub fn insert_lines(conn: &Connection, id: i64, lines: &[Difference]) -> Result<(), DbError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO reconciliation_line
             (reconciliation_id, kind, line, txn_id, transaction_id, registry_date,
              registry_account, registry_minor, here_date, here_account, here_minor, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for d in lines {
        stmt.execute(params![
            id,
            d.kind.map(Kind::as_str),
            d.line.and_then(|l| i64::try_from(l).ok()),
            d.txn_id,
            d.payment_id,
            d.registry_date,
            d.registry_account,
            d.registry_minor,
            d.here_date,
            d.here_account,
            d.here_minor,
            d.reason
        ])?;
    }
    Ok(())
}

/// The newest `limit` reconciliations, newest first.
pub fn list(conn: &Connection, limit: usize) -> Result<Vec<StoredReport>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, file_name, sha256, verdict, differences FROM reconciliation
         ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], stored)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Reconciliation `id` with at most `max_lines` of its differing lines (all with `None`).
pub fn get(
    conn: &Connection,
    id: i64,
    max_lines: Option<usize>,
) -> Result<Option<(StoredReport, Report)>, DbError> {
    let Some((head, json)) = conn
        .query_row(
            "SELECT id, created_at, file_name, sha256, verdict, differences, summary
             FROM reconciliation WHERE id = ?1",
            [id],
            |r| Ok((stored(r)?, r.get::<_, String>(6)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let summary: Summary =
        serde_json::from_str(&json).map_err(|e| DbError::Commit(format!("summary: {e}")))?;
    let limit = max_lines.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(
        "SELECT kind, line, txn_id, transaction_id, registry_date, registry_account,
                registry_minor, here_date, here_account, here_minor, reason
         FROM reconciliation_line WHERE reconciliation_id = ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![id, limit], |r| {
        Ok(Difference {
            kind: Kind::parse(&r.get::<_, String>(0)?),
            line: r
                .get::<_, Option<i64>>(1)?
                .and_then(|l| u64::try_from(l).ok()),
            txn_id: r.get(2)?,
            payment_id: r.get(3)?,
            registry_date: r.get(4)?,
            registry_account: r.get(5)?,
            registry_minor: r.get(6)?,
            here_date: r.get(7)?,
            here_account: r.get(8)?,
            here_minor: r.get(9)?,
            reason: r.get(10)?,
        })
    })?;
    let differences = rows.collect::<Result<_, _>>()?;
    Ok(Some((
        head,
        Report {
            summary,
            differences,
        },
    )))
}
