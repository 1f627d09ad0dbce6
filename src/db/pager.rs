//! The keyset pager of the admin lists, and the exact sum of money columns.
//!
//! Lists are ordered newest first by `(created_at, id)` and paged by keyset: a cursor is the id
//! of a row, and the next page starts strictly after that row's `(created_at, id)`. Never
//! `OFFSET`, which makes SQLite step over every skipped row.
//!
//! Each list query is driven by one index chosen by its table's module (`INDEXED BY`, so a plan
//! cannot silently change): the index of the most selective equality filter, whose order is
//! already the page's order, so an index-only filter costs one seek and `PAGE_SIZE + 1` steps.
//! Filters no index serves in that order (a sum range, text in a request) are tested row by row
//! in Rust as the index is walked, and one page walks at most `SCAN_BUDGET` rows or `SCAN_TIME`:
//! a rare match deep in the table then yields a short page with a cursor to go on from, not a
//! slow page.

use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use super::DbError;

/// Rows on one list page.
pub const PAGE_SIZE: usize = 50;
/// Most rows one page walks to find its matches when a filter is tested row by row.
pub const SCAN_BUDGET: usize = 20_000;
/// Longest one page walks rows to find its matches when a filter is tested row by row.
pub const SCAN_TIME: Duration = Duration::from_millis(25);

/// Which way a page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Rows older than the row with this id.
    After(i64),
    /// Rows newer than the row with this id.
    Before(i64),
}

/// One page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows, newest first.
    pub rows: Vec<T>,
    /// Cursor (`After`) for the next, older page; `None` at the end.
    pub older: Option<i64>,
    /// Cursor (`Before`) for the previous, newer page; `None` on the first page.
    pub newer: Option<i64>,
    /// The page stopped after walking `SCAN_BUDGET` rows: there may be more matches beyond.
    pub budget_hit: bool,
}

/// Money columns are summed in two integer halves, `sum_minor / SPLIT` and `sum_minor %
/// SPLIT`, each of which SQLite's 64-bit `sum()` can add for ~10^9 rows of the largest sum
/// (9.0e15 kopecks) without overflow; they are joined exactly in `i128`. Never a float.
pub(crate) const SPLIT: i64 = 1_000_000_000;

/// `SELECT` terms that sum `col` without overflow, read back by [`joined_sum`].
pub(crate) fn split_sum(col: &str) -> String {
    format!("coalesce(sum({col} / {SPLIT}), 0), coalesce(sum({col} % {SPLIT}), 0)")
}

/// The exact sum from the two halves of [`split_sum`] at columns `i` and `i + 1`.
pub(crate) fn joined_sum(r: &Row<'_>, i: usize) -> rusqlite::Result<i128> {
    let hi: i64 = r.get(i)?;
    let lo: i64 = r.get(i + 1)?;
    Ok(i128::from(hi) * i128::from(SPLIT) + i128::from(lo))
}

/// A list query under construction: numbered parameters, so conditions can be written in any
/// order.
#[derive(Default)]
pub(crate) struct Query {
    pub(crate) params: Vec<Value>,
    /// Conditions the driving index serves.
    pub(crate) indexed: Vec<String>,
    /// Conditions tested row by row (the `hit` column).
    pub(crate) residual: Vec<String>,
    /// `Some(table)` when the driving index covers the sort (`created_at` and the rowid) but
    /// does not give rows in time order (an account prefix): with no residual condition the
    /// page's ids are sorted on the index alone and only the page's rows are read from `table`
    /// (migration 0008).
    pub(crate) presort: Option<&'static str>,
    /// How many rows the caller reads at most (a page and one more), for `presort`.
    pub(crate) limit: Option<usize>,
}

impl Query {
    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> String {
        self.params.push(v.into());
        format!("?{}", self.params.len())
    }

    pub(crate) fn range(&mut self, from: &Option<String>, until: &Option<String>) {
        if let Some(f) = from {
            let p = self.bind(f.clone());
            self.indexed.push(format!("created_at >= {p}"));
        }
        if let Some(u) = until {
            let p = self.bind(u.clone());
            self.indexed.push(format!("created_at < {p}"));
        }
    }

    /// `SELECT hit, id, {columns} FROM {from} WHERE ... ORDER BY ...` from `cursor` on.
    pub(crate) fn sql(
        &mut self,
        columns: &str,
        from: &str,
        cursor: Option<(Cursor, &str)>,
    ) -> (String, bool) {
        let mut wh = self.indexed.clone();
        let mut desc = true;
        if let Some((c, created_at)) = cursor {
            let (op, id) = match c {
                Cursor::After(id) => ("<", id),
                Cursor::Before(id) => {
                    desc = false;
                    (">", id)
                }
            };
            let t = self.bind(created_at.to_owned());
            let i = self.bind(id);
            wh.push(format!("(created_at, id) {op} ({t}, {i})"));
        }
        let hit = if self.residual.is_empty() {
            "1".to_owned()
        } else {
            format!("({})", self.residual.join(") AND ("))
        };
        let wh = if wh.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wh.join(" AND "))
        };
        let dir = if desc { "DESC" } else { "ASC" };
        if let (Some(table), Some(limit), "1") = (self.presort, self.limit, hit.as_str()) {
            // Sorted on the index's own columns (no row read), then the page's rows read.
            return (
                format!(
                    "SELECT 1, id, {columns} FROM {table} WHERE id IN (
                         SELECT id FROM {from} {wh}
                         ORDER BY created_at {dir}, id {dir} LIMIT {limit})
                     ORDER BY created_at {dir}, id {dir}"
                ),
                desc,
            );
        }
        (
            format!(
                "SELECT {hit}, id, {columns} FROM {from} {wh} \
                 ORDER BY created_at {dir}, id {dir}"
            ),
            desc,
        )
    }
}

/// What walking an index found.
pub(crate) struct Scan<T> {
    pub(crate) hits: Vec<(i64, T)>,
    /// Where to go on from, in the same direction; `None` when the walk reached the end.
    pub(crate) more: Option<i64>,
    pub(crate) budget_hit: bool,
}

/// Walks `sql`'s rows (`hit, id, ...`), keeping up to `limit` hits. With a `budget` it also
/// stops after that many rows or `SCAN_TIME`, whichever comes first: the time bound keeps a
/// page fast on slow hardware too, and the cursor still resumes exactly where the walk stopped.
pub(crate) fn scan<T>(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    limit: usize,
    budget: Option<usize>,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Scan<T>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut hits = Vec::new();
    let mut walked = 0;
    let started = Instant::now();
    while let Some(row) = rows.next()? {
        // A residual condition on a NULL column (`result = 0` on a refused request) is NULL,
        // which is not a match.
        let hit: Option<bool> = row.get(0)?;
        let id: i64 = row.get(1)?;
        if hit == Some(true) {
            if hits.len() == limit {
                // One more match exists: the page is full, and the next one starts after its
                // last row.
                let more = hits.last().map(|(id, _)| *id);
                return Ok(Scan {
                    hits,
                    more,
                    budget_hit: false,
                });
            }
            hits.push((id, map(row)?));
        }
        walked += 1;
        let out_of_time = || walked % 256 == 0 && started.elapsed() >= SCAN_TIME;
        if budget.is_some_and(|b| walked >= b || out_of_time()) {
            return Ok(Scan {
                hits,
                more: Some(id),
                budget_hit: true,
            });
        }
    }
    Ok(Scan {
        hits,
        more: None,
        budget_hit: false,
    })
}

/// The `created_at` of row `id` of `table`, which a cursor names.
pub(crate) fn cursor_time(
    conn: &Connection,
    table: &str,
    id: i64,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(&format!("SELECT created_at FROM {table} WHERE id = ?1"))?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

/// Runs a list query from `cursor` and assembles the page.
#[allow(clippy::too_many_arguments)]
pub(crate) fn page<T>(
    conn: &Connection,
    table: &str,
    mut q: Query,
    columns: &str,
    from: &str,
    cursor: Option<Cursor>,
    budget: usize,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Page<T>, DbError> {
    let time = match cursor {
        None => None,
        Some(Cursor::After(id) | Cursor::Before(id)) => match cursor_time(conn, table, id)? {
            Some(t) => Some(t),
            // A cursor naming no row: there is nothing to page from.
            None => {
                return Ok(Page {
                    rows: Vec::new(),
                    older: None,
                    newer: None,
                    budget_hit: false,
                });
            }
        },
    };
    let budget = (!q.residual.is_empty()).then_some(budget);
    q.limit = Some(PAGE_SIZE + 1);
    let (sql, desc) = q.sql(columns, from, cursor.zip(time.as_deref()));
    let s = scan(conn, &sql, &q.params, PAGE_SIZE, budget, map)?;
    let ids: Vec<i64> = s.hits.iter().map(|(id, _)| *id).collect();
    let mut rows: Vec<T> = s.hits.into_iter().map(|(_, r)| r).collect();
    Ok(match cursor {
        None => Page {
            rows,
            older: s.more,
            newer: None,
            budget_hit: s.budget_hit,
        },
        Some(Cursor::After(from_id)) => Page {
            newer: Some(ids.first().copied().unwrap_or(from_id)),
            rows,
            older: s.more,
            budget_hit: s.budget_hit,
        },
        Some(Cursor::Before(from_id)) => {
            debug_assert!(!desc);
            rows.reverse();
            Page {
                older: Some(ids.first().copied().unwrap_or(from_id)),
                newer: s.more,
                rows,
                budget_hit: s.budget_hit,
            }
        }
    })
}
