//! `import-original` (issue 18): copies the original "Qiwi Terminal Payments" container's
//! PostgreSQL tables (`qiwi_transaction`, and with `--with-log` `qiwi_http_log`) into the
//! gateway's SQLite database, so that a `pay` QIWI repeats after the switch answers the
//! `prv_txn` the original gave instead of becoming a second payment.
//!
//! Safe to run: it holds the database lock `serve` holds (so it refuses while the gateway
//! runs), reads PostgreSQL in one READ ONLY snapshot (it cannot write there), writes SQLite in
//! one transaction (all or nothing), refuses a database that already has payments unless
//! `--merge`, and before committing checks that PostgreSQL's own count and total equal what
//! SQLite counts plus what was skipped. It streams: one batch of rows in memory at a time.

pub mod convert;
pub mod source;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use postgres::Row;
use rusqlite::TransactionBehavior;
use url::Url;

use crate::db::import::{self as target, Payment, Placed};
use crate::db::{self, DbError};
use crate::ops::progress::Progress;
use crate::qiwi::Amount;

pub use source::OriginalPg;

/// Report lines listed one by one before "... and N more".
const LISTED: usize = 20;

/// What the command line asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also copy `qiwi_http_log` (the requests QIWI sent).
    pub with_log: bool,
    /// Import into a database that already has payments: a `txn_id` on both sides is
    /// compared, never imported twice.
    pub merge: bool,
    /// Mark the original's undelivered payments (status 0) delivered instead of sending them.
    pub no_deliver: bool,
}

/// Why an import did not happen. Each is one line; nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A `PG_*` setting is missing.
    #[error("{0}")]
    NotConfigured(String),
    /// The server could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The server refused the login.
    #[error("{0}")]
    LoginRefused(String),
    /// PostgreSQL failed otherwise.
    #[error("{0}")]
    Postgres(String),
    /// The target refuses this import (payments already there, gateway running...).
    #[error("{0}")]
    Refused(String),
    /// The original's tables are not where or what they should be.
    #[error("{0}")]
    Schema(String),
    /// Rows that cannot be imported; the report lists them.
    #[error("{0}")]
    BadRows(String),
    /// The two sides' counts or totals differ: rolled back.
    #[error("{0}")]
    Mismatch(String),
    /// The gateway's database failed.
    #[error("the gateway's database: {0}")]
    Db(DbError),
}

impl From<DbError> for ImportError {
    fn from(e: DbError) -> Self {
        ImportError::Db(e)
    }
}

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
        ImportError::Db(DbError::Sqlite(e))
    }
}

/// Counts and totals (kopecks) of one kind of row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Rows.
    pub count: i64,
    /// Their sum in kopecks.
    pub minor: i64,
}

impl Tally {
    fn add(&mut self, minor: i64) {
        self.count += 1;
        self.minor += minor;
    }
}

/// What an import did, as printed.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The run's id (`import_run.id`).
    pub run: i64,
    /// PostgreSQL's own count and total (sums rounded half to even to kopecks).
    pub original: Tally,
    /// PostgreSQL's exact total of `sum`, as text.
    pub original_exact_total: String,
    /// Rows stored, as SQLite counts them.
    pub imported: Tally,
    /// `--merge`: the gateway had the same `txn_id`, account and sum.
    pub skipped: Tally,
    /// `--merge`: the gateway had the `txn_id` with another account or sum.
    pub conflicting: Tally,
    /// The original held the same code twice: the later rows.
    pub duplicates: Tally,
    /// Imported rows due for delivery (status 0, without `--no-deliver`).
    pub due: i64,
    /// Imported rows that will not be sent (status 1, or `--no-deliver`).
    pub delivered: i64,
    /// Rows whose sum was not a whole number of kopecks.
    pub not_whole: i64,
    /// Request log rows read and stored (`--with-log`).
    pub log: Option<(i64, i64)>,
    /// The largest payment id after the import: new payments get ids above it.
    pub max_id: i64,
    /// Notes on single rows, at most [`LISTED`] of each kind.
    pub notes: Vec<String>,
}

/// What the import reads from the configuration: the gateway's database, the original's
/// PostgreSQL and whether (and where) the imported undelivered payments will be sent.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The gateway's SQLite file (`database_path`).
    pub database_path: &'a Path,
    /// The original's PostgreSQL (`PG_*`).
    pub original_pg: &'a OriginalPg,
    /// `qiwi_webhook_url`, for the plan's sentence about undelivered payments.
    pub webhook_url: Option<&'a Url>,
}

/// Runs the import with `cfg`'s database and `PG_*` settings, printing the plan (before it
/// starts) and the report (after the commit) to `out`, progress to stderr.
pub fn run(cfg: &Settings<'_>, opts: Options, out: &mut dyn Write) -> Result<Summary, ImportError> {
    // Held to the end: no gateway may serve (or start on) the database meanwhile.
    let _lock = crate::ops::lock::lock_database(cfg.database_path).map_err(|e| match e {
        crate::ops::lock::LockError::Held { .. } => {
            ImportError::Refused(format!("import-original needs the gateway stopped: {e}"))
        }
        crate::ops::lock::LockError::Io { .. } => ImportError::Refused(e.to_string()),
    })?;
    // The original first: a wrong setting is said before anything is created here.
    let (mut client, place) = source::connect(cfg.original_pg)?;
    let mut conn = target::open(cfg.database_path)?;
    let (have, _) = target::payment_totals(&conn)?;
    if have > 0 && !opts.merge {
        return Err(ImportError::Refused(format!(
            "{} already has {have} payments: import-original fills a new database; to add the \
             original's payments beside these, run it with --merge (a txn_id on both sides is \
             compared, never imported twice)",
            cfg.database_path.display()
        )));
    }
    if opts.with_log
        && let Some(run) = target::log_imported_by(&conn)?
    {
        return Err(ImportError::Refused(format!(
            "import run {run} already copied the original's request log: run again without \
             --with-log"
        )));
    }

    let mut pg = source::snapshot(&mut client)?;
    let cols = source::columns(&mut pg, &place.schema, "qiwi_transaction")?;
    if cols.is_empty() {
        return Err(ImportError::Schema(format!(
            "there is no table qiwi_transaction at {place} for user {:?}: are PG_DATABASE and \
             PG_SCHEMA the original container's?",
            place.user
        )));
    }
    let ty = |name: &str| {
        cols.iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    };
    let missing: Vec<&str> = ["id", "account", "code", "sum", "status"]
        .into_iter()
        .filter(|c| ty(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Schema(format!(
            "qiwi_transaction at {place} has no column {}: it is not the original's table",
            missing.join(", ")
        )));
    }
    let table = format!(
        "{}.{}",
        source::ident(&place.schema),
        source::ident("qiwi_transaction")
    );

    // PostgreSQL's own figures, in the snapshot the rows are read from.
    let stats = pg
        .query_one(
            &format!(
                "WITH v AS (SELECT {} AS s, t.status::text AS st FROM {table} t)
                 SELECT count(*)::int8, coalesce(sum(s), 0)::text,
                        coalesce(sum(CASE WHEN (s * 100) % 1 = 0.5 AND trunc(s * 100) % 2 = 0
                                          THEN trunc(s * 100) ELSE round(s * 100) END), 0)::text,
                        count(*) FILTER (WHERE (s * 100) % 1 <> 0)::int8,
                        count(*) FILTER (WHERE st IS DISTINCT FROM '1'
                                           AND st IS DISTINCT FROM 'true')::int8
                 FROM v",
                source::plain_sum("sum")
            ),
            &[],
        )
        .map_err(|e| source::pg_error("counting qiwi_transaction", &e))?;
    let mut summary = Summary {
        original: Tally {
            count: stats.get(0),
            minor: stats.get::<_, String>(2).parse().map_err(|_| {
                ImportError::Postgres("the original's total is beyond what is stored".into())
            })?,
        },
        original_exact_total: stats.get(1),
        ..Summary::default()
    };
    let pg_not_whole: i64 = stats.get(3);
    let pg_undelivered: i64 = stats.get(4);
    plan(cfg, opts, &place, &summary, pg_undelivered, out);

    let (created_expr, parse_created) = source::time_expr("created_at", ty("created_at"));
    let txn_date_expr = match ty("txn_date") {
        Some(_) => "t.txn_date::text",
        None => "NULL::text",
    };
    // Every other column is kept in `extra` (updated_at, which only says when the original
    // last touched the row, is left out).
    let known = [
        "id",
        "account",
        "code",
        "sum",
        "status",
        "created_at",
        "updated_at",
        "txn_date",
    ];
    let known = known
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "SELECT t.id::int8, t.account::text, t.code::text, t.sum::text, t.status::text,
                {created_expr}, {txn_date_expr},
                (to_jsonb(t) - ARRAY[{known}]::text[])::text
         FROM {table} t ORDER BY t.id"
    );

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = chrono::Utc::now();
    let now_text = db::format_time(now);
    let due_ms = now.timestamp_millis();
    let run = target::start_run(&tx, &now_text, &place.to_string())?;
    // An import larger than what is there builds the secondary indexes once at the end
    // instead of row by row (into an empty database: always).
    let bulk = summary.original.count > have;
    let dropped = if bulk {
        target::drop_indexes(&tx, "qiwi_transaction")?
    } else {
        Vec::new()
    };
    summary.run = run;
    let mut problems = Vec::new();
    let mut problem_count = 0usize;
    let mut deferred: Vec<Payment> = Vec::new();
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut note_counts: HashMap<&'static str, usize> = HashMap::new();
    let mut note = |kind: &'static str, line: String, notes: &mut Vec<String>| {
        let n = note_counts.entry(kind).or_default();
        *n += 1;
        if *n <= LISTED {
            notes.push(line);
        }
    };
    let progress = Progress::start(
        "import qiwi_transaction",
        u64::try_from(summary.original.count).unwrap_or(0),
        "payments",
    );
    {
        let mut store = |p: Payment,
                         raw_sum: Option<String>,
                         notes: &mut Vec<String>|
         -> Result<(), ImportError> {
            if let Some(raw) = raw_sum {
                note(
                    "not-whole",
                    format!(
                        "id {}: sum {raw} is not a whole number of kopecks: stored as {} \
                         (rounded half to even; the original value is kept in \
                         extra.original_sum)",
                        p.id,
                        Amount::from_minor(p.sum_minor)
                    ),
                    notes,
                );
            }
            let delivered = p.delivered;
            let due = (!delivered).then_some(due_ms);
            match target::place(&tx, run, &p, due)? {
                Placed::Inserted => {}
                Placed::InsertedAsStored => note(
                    "as-stored",
                    format!(
                        "id {}: txn_id {} is also an earlier row's (the original kept {:?} \
                         apart): stored under its code {:?} as the original had it",
                        p.id, p.canonical, p.code, p.code
                    ),
                    notes,
                ),
                Placed::Same { .. } => {
                    summary.skipped.add(p.sum_minor);
                    return Ok(());
                }
                Placed::Different {
                    id,
                    account,
                    sum_minor,
                } => {
                    summary.conflicting.add(p.sum_minor);
                    note(
                        "conflict",
                        format!(
                            "txn_id {}: the original's id {} (account {:?}, sum {}) differs \
                             from the gateway's id {id} (account {account:?}, sum {}): not \
                             imported",
                            p.canonical,
                            p.id,
                            p.account,
                            Amount::from_minor(p.sum_minor),
                            Amount::from_minor(sum_minor)
                        ),
                        notes,
                    );
                    return Ok(());
                }
                Placed::Duplicate { id } => {
                    summary.duplicates.add(p.sum_minor);
                    note(
                        "duplicate",
                        format!(
                            "id {}: code {:?} is also the original's id {id}: not imported \
                             (account {:?}, sum {})",
                            p.id,
                            p.code,
                            p.account,
                            Amount::from_minor(p.sum_minor)
                        ),
                        notes,
                    );
                    return Ok(());
                }
                Placed::IdTaken => {
                    deferred.push(p);
                    return Ok(());
                }
            }
            summary.imported.add(p.sum_minor);
            count_delivery(&mut summary, &mut acked, &p);
            Ok(())
        };
        let mut notes = Vec::new();
        source::stream(&mut pg, &select, "reading qiwi_transaction", |row| {
            progress.inc(1);
            match payment(row, parse_created, opts, &now_text) {
                Ok((p, raw_sum)) => store(p, raw_sum, &mut notes),
                Err(problem) => {
                    problem_count += 1;
                    if problems.len() < LISTED {
                        problems.push(problem);
                    }
                    Ok(())
                }
            }
        })?;
        summary.notes = notes;
    }
    progress.finish();
    summary.not_whole = i64::try_from(*note_counts.get("not-whole").unwrap_or(&0)).unwrap_or(0);
    if problem_count > 0 {
        let mut text = format!(
            "{problem_count} rows of qiwi_transaction cannot be imported, so nothing was: {}",
            problems.join("; ")
        );
        if problem_count > problems.len() {
            let _ = write!(text, "; and {} more", problem_count - problems.len());
        }
        return Err(ImportError::BadRows(text));
    }
    for p in deferred {
        let due = (!p.delivered).then_some(due_ms);
        match target::insert_renumbered(&tx, run, &p, due)? {
            Some(new_id) => {
                summary.notes.push(format!(
                    "id {}: the gateway's payment {} has this id: stored as id {new_id} (a \
                     repeat of txn_id {} answers prv_txn {new_id})",
                    p.id, p.id, p.canonical
                ));
                summary.imported.add(p.sum_minor);
                count_delivery(&mut summary, &mut acked, &p);
            }
            None => {
                summary.duplicates.add(p.sum_minor);
                summary.notes.push(format!(
                    "id {}: txn_id {} is already stored: not imported",
                    p.id, p.canonical
                ));
            }
        }
    }

    target::create_indexes(&tx, &dropped)?;
    if opts.with_log {
        summary.log = Some(import_log(&mut pg, &tx, &place, &now_text)?);
    }
    target::add_acked(&tx, &acked)?;
    verify(&tx, &summary, pg_not_whole)?;
    summary.max_id = tx.query_row(
        "SELECT coalesce(max(id), 0) FROM qiwi_transaction",
        [],
        |r| r.get(0),
    )?;
    let report = report(cfg, &place, &summary);
    target::finish_run(
        &tx,
        run,
        summary.imported.count,
        summary.log.map_or(0, |(_, stored)| stored),
        &report,
    )?;
    tx.commit()?;
    // Read only: ending it changes nothing on the original's side.
    let _ = pg.rollback();
    target::checkpoint(&conn)?;
    let _ = out.write_all(report.as_bytes());
    Ok(summary)
}

fn count_delivery(summary: &mut Summary, acked: &mut HashMap<String, i64>, p: &Payment) {
    if p.delivered {
        summary.delivered += 1;
        let hour = p.created_at.get(..13).unwrap_or(&p.created_at).to_owned();
        *acked.entry(hour).or_default() += 1;
    } else {
        summary.due += 1;
    }
}

/// One row of the original's `qiwi_transaction` converted, with its sum as written when that
/// was not whole kopecks; or the problem that keeps it out, as a report line.
fn payment(
    row: &Row,
    parse_created: bool,
    opts: Options,
    now_text: &str,
) -> Result<(Payment, Option<String>), String> {
    let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
    let id = row
        .try_get::<_, Option<i64>>(0)
        .ok()
        .flatten()
        .filter(|&i| i > 0)
        .ok_or_else(|| "a row has no positive id".to_owned())?;
    let code = text(2)
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| format!("id {id}: code is empty"))?;
    let account = text(1).ok_or_else(|| format!("id {id}: account is empty"))?;
    let raw_sum = text(3).ok_or_else(|| format!("id {id}: sum is empty"))?;
    let sum = convert::kopecks(&raw_sum).map_err(|e| format!("id {id}: sum {e}"))?;
    let status = text(4).unwrap_or_default();
    let acknowledged = convert::delivered(&status)
        .ok_or_else(|| format!("id {id}: status {status:?} is not 0 or 1"))?;
    let created_at = match text(5) {
        None => now_text.to_owned(),
        Some(t) if parse_created => convert::utc_text(&t)
            .ok_or_else(|| format!("id {id}: created_at {t:?} is not a time"))?,
        Some(t) => t,
    };
    let txn_date = text(6)
        .filter(|d| d.len() == 14 && d.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| convert::txn_date_from(&created_at));
    let mut extra = text(7).unwrap_or_else(|| "{}".to_owned());
    if extra != "{}" || !sum.exact {
        // PostgreSQL's jsonb text, rewritten as the gateway writes JSON; empty columns left out.
        let mut map = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&extra)
            .unwrap_or_default();
        map.retain(|_, v| !v.is_null());
        if !sum.exact {
            map.insert("original_sum".into(), raw_sum.clone().into());
        }
        extra = serde_json::Value::Object(map).to_string();
    }
    let canonical = crate::qiwi::txn_id::canonical(code.trim()).to_owned();
    Ok((
        Payment {
            id,
            code,
            canonical,
            account,
            sum_minor: sum.minor,
            delivered: acknowledged || opts.no_deliver,
            created_at,
            txn_date,
            extra,
        },
        (!sum.exact).then_some(raw_sum),
    ))
}

/// Copies `qiwi_http_log` (a new id for each row, in the original's order); returns the rows
/// PostgreSQL counted and the rows stored, which must be equal.
fn import_log(
    pg: &mut postgres::Transaction<'_>,
    tx: &rusqlite::Transaction<'_>,
    place: &source::Place,
    now_text: &str,
) -> Result<(i64, i64), ImportError> {
    let cols = source::columns(pg, &place.schema, "qiwi_http_log")?;
    if cols.is_empty() {
        return Err(ImportError::Schema(format!(
            "there is no table qiwi_http_log at {place}: run again without --with-log"
        )));
    }
    let has = |name: &str| cols.iter().any(|(n, _)| n == name);
    let ty = |name: &str| {
        cols.iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    };
    let col = |name: &str| {
        if has(name) {
            format!("t.{}::text", source::ident(name))
        } else {
            "NULL::text".to_owned()
        }
    };
    let (created_expr, parse_created) = source::time_expr("created_at", ty("created_at"));
    let table = format!(
        "{}.{}",
        source::ident(&place.schema),
        source::ident("qiwi_http_log")
    );
    let order = if has("id") { "ORDER BY t.id" } else { "" };
    let select = format!(
        "SELECT {}, {}, {}, {}, {}, {created_expr} FROM {table} t {order}",
        col("ip"),
        col("url"),
        col("method"),
        col("headers"),
        col("body")
    );
    let counted: i64 = pg
        .query_one(&format!("SELECT count(*)::int8 FROM {table}"), &[])
        .map_err(|e| source::pg_error("counting qiwi_http_log", &e))?
        .get(0);
    let progress = Progress::start(
        "import qiwi_http_log",
        u64::try_from(counted).unwrap_or(0),
        "requests",
    );
    let mut stored = 0i64;
    source::stream(pg, &select, "reading qiwi_http_log", |row| {
        progress.inc(1);
        let text = |i: usize| {
            row.try_get::<_, Option<String>>(i)
                .ok()
                .flatten()
                .unwrap_or_default()
        };
        let (url, body) = (text(1), text(4));
        let created = text(5);
        let created_at = if created.is_empty() {
            now_text.to_owned()
        } else if parse_created {
            convert::utc_text(&created).unwrap_or_else(|| now_text.to_owned())
        } else {
            created
        };
        let entry = db::http_log::LogEntry {
            ip: text(0),
            txn_id: convert::request_txn_id(&url, &body),
            url,
            method: text(2),
            headers: convert::stored_headers(&text(3)),
            body,
            created_at,
            // The original kept no answer: status 0 says "not recorded".
            status: 0,
            response: String::new(),
            result: None,
        };
        db::http_log::insert(tx, &entry)?;
        stored += 1;
        Ok(())
    })?;
    progress.finish();
    Ok((counted, stored))
}

/// Compares PostgreSQL's figures with SQLite's own count of the rows this run stored plus
/// what it skipped; any difference is an error (and the transaction is rolled back).
fn verify(
    tx: &rusqlite::Transaction<'_>,
    s: &Summary,
    pg_not_whole: i64,
) -> Result<(), ImportError> {
    let (count, minor) = target::run_totals(tx, s.run)?;
    let stored = Tally { count, minor };
    let accounted = Tally {
        count: stored.count + s.skipped.count + s.conflicting.count + s.duplicates.count,
        minor: stored.minor + s.skipped.minor + s.conflicting.minor + s.duplicates.minor,
    };
    let mut wrong = Vec::new();
    if stored != s.imported {
        wrong.push(format!(
            "SQLite holds {} payments ({}) of this run, the import counted {} ({})",
            stored.count,
            Amount::from_minor(stored.minor),
            s.imported.count,
            Amount::from_minor(s.imported.minor)
        ));
    }
    if accounted != s.original {
        wrong.push(format!(
            "PostgreSQL has {} payments ({}), the import accounts for {} ({})",
            s.original.count,
            Amount::from_minor(s.original.minor),
            accounted.count,
            Amount::from_minor(accounted.minor)
        ));
    }
    if pg_not_whole != s.not_whole {
        wrong.push(format!(
            "PostgreSQL has {pg_not_whole} sums that are not whole kopecks, the import saw {}",
            s.not_whole
        ));
    }
    if let Some((read, stored)) = s.log
        && read != stored
    {
        wrong.push(format!(
            "PostgreSQL has {read} logged requests, SQLite stored {stored}"
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Mismatch(format!(
            "the two sides do not match, so nothing was imported: {}",
            wrong.join("; ")
        )))
    }
}

/// What is about to happen, said before it does.
fn plan(
    cfg: &Settings<'_>,
    opts: Options,
    place: &source::Place,
    s: &Summary,
    undelivered: i64,
    out: &mut dyn Write,
) {
    let mut t = format!(
        "original: qiwi_transaction at {place}: {} payments, total {}\n",
        s.original.count, s.original_exact_total
    );
    if undelivered > 0 {
        let what = if opts.no_deliver {
            "--no-deliver: they are marked delivered and not sent".to_owned()
        } else {
            match &cfg.webhook_url {
                Some(u) => format!(
                    "they will be sent to {} once the gateway starts (--no-deliver marks them \
                     delivered instead)",
                    crate::ops::redact::url(u)
                ),
                None => "they stay due until qiwi_webhook_url is set (--no-deliver marks them \
                         delivered instead)"
                    .to_owned(),
            }
        };
        let _ = writeln!(
            t,
            "{undelivered} of them have status 0 (webhook not acknowledged): {what}"
        );
    }
    let _ = writeln!(
        t,
        "importing into {} in one transaction...",
        cfg.database_path.display()
    );
    let _ = out.write_all(t.as_bytes());
    let _ = out.flush();
}

/// The closing report: both sides' counts and totals, and the notes on single rows.
fn report(cfg: &Settings<'_>, place: &source::Place, s: &Summary) -> String {
    let money = |m: i64| Amount::from_minor(m).to_string();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "import run {} from {place} into {}:",
        s.run,
        cfg.database_path.display()
    );
    let row = |t: &mut String, label: &str, x: Tally| {
        let _ = writeln!(t, "  {label:<38} {:>10} {:>18}", x.count, money(x.minor));
    };
    let _ = writeln!(t, "  {:<38} {:>10} {:>18}", "", "payments", "total");
    row(&mut t, "PostgreSQL qiwi_transaction", s.original);
    row(&mut t, "SQLite: imported", s.imported);
    if s.skipped.count > 0 {
        row(
            &mut t,
            "SQLite: already there (--merge), skipped",
            s.skipped,
        );
    }
    if s.conflicting.count > 0 {
        row(&mut t, "conflicting txn_id, not imported", s.conflicting);
    }
    if s.duplicates.count > 0 {
        row(&mut t, "duplicate code, not imported", s.duplicates);
    }
    let _ = writeln!(
        t,
        "  the sides match: {} = {}{}{}{}",
        s.original.count,
        s.imported.count,
        plus(s.skipped.count),
        plus(s.conflicting.count),
        plus(s.duplicates.count)
    );
    if s.original_exact_total != money(s.original.minor) {
        let _ = writeln!(
            t,
            "  (PostgreSQL's exact total is {}; {} sums were not whole kopecks and were \
             rounded half to even)",
            s.original_exact_total, s.not_whole
        );
    }
    let _ = writeln!(
        t,
        "  delivery: {} due now (status 0), {} not sent again (status 1, or --no-deliver)",
        s.due, s.delivered
    );
    if let Some((read, stored)) = s.log {
        let _ = writeln!(
            t,
            "  request log: {read} rows in PostgreSQL, {stored} stored"
        );
    }
    let _ = writeln!(
        t,
        "  the highest payment id is now {}: new payments get ids above it",
        s.max_id
    );
    for n in &s.notes {
        let _ = writeln!(t, "  note: {n}");
    }
    t
}

fn plus(n: i64) -> String {
    if n > 0 {
        format!(" + {n}")
    } else {
        String::new()
    }
}
