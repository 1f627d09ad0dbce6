//! Reconciliation: QIWI's payment registry (the file QIWI sends every day) checked against the
//! payments the gateway stored. Reads payments only; never changes one.
//!
//! [`reader`] streams the file into lines; [`reconcile`] looks the lines up in batches through
//! [`Payments`] (the database's read pool in production, a vector in the unit tests), then
//! walks the gateway's payments of the registry's period for those QIWI does not list, and
//! builds a [`Report`]. [`render`] writes the report as text (the CLI) and CSV (the download).

pub mod reader;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

pub use reader::{ColumnMap, NotARegistry};
use reader::{Item as ReadItem, Line};

/// Registry lines looked up in one query.
pub const BATCH: usize = 500;

/// A payment as the gateway stored it, as far as reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Its id (`prv_txn`).
    pub id: i64,
    /// QIWI's `txn_id` as stored.
    pub code: String,
    /// The account.
    pub account: String,
    /// The sum in kopecks.
    pub sum_minor: i64,
    /// QIWI's `txn_date` as received: `YYYYMMDDHHMMSS`, Moscow time.
    pub txn_date: String,
}

/// Where the gateway's payments are read from.
pub trait Payments {
    /// The error of a read.
    type Error;
    /// The payments whose `txn_id` is one of `txn_ids` (canonical), in any order.
    fn find(&mut self, txn_ids: &[&str]) -> Result<Vec<Payment>, Self::Error>;
    /// Calls `each` with every payment whose `txn_date` lies in `[from, to]`
    /// (`YYYYMMDDHHMMSS`, Moscow time, both ends included).
    fn in_period(
        &mut self,
        from: &str,
        to: &str,
        each: &mut dyn FnMut(Payment),
    ) -> Result<(), Self::Error>;
}

/// Why a reconciliation produced no report.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError<E> {
    /// The file is not a registry.
    #[error("not a registry: {0}")]
    NotARegistry(#[from] NotARegistry),
    /// Reading the payments failed.
    #[error("reading payments: {0}")]
    Payments(E),
}

/// What kind of difference a report line is, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In QIWI's registry, missing here: the worst kind (QIWI took the customer's money).
    MissingHere,
    /// Here, missing from QIWI's registry (for the registry's period): money that won't come.
    MissingFromRegistry,
    /// Same `txn_id`, another sum or account.
    Different,
    /// A line that could not be read.
    Malformed,
    /// The total line disagrees with the lines.
    Total,
}

impl Kind {
    /// The kind as stored and in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingHere => "missing_here",
            Kind::MissingFromRegistry => "missing_from_registry",
            Kind::Different => "different",
            Kind::Malformed => "malformed",
            Kind::Total => "total",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::MissingHere,
            Kind::MissingFromRegistry,
            Kind::Different,
            Kind::Malformed,
            Kind::Total,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// A heading for the kind.
    pub fn title(self) -> &'static str {
        match self {
            Kind::MissingHere => "In QIWI's registry, missing here",
            Kind::MissingFromRegistry => "Here, missing from QIWI's registry",
            Kind::Different => "Different (same txn_id, other sum or account)",
            Kind::Malformed => "Malformed lines",
            Kind::Total => "Total line",
        }
    }
}

/// One line of the report that is not a match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Difference {
    /// Its kind (`None` only in `Default`).
    pub kind: Option<Kind>,
    /// The registry line number.
    pub line: Option<u64>,
    /// The canonical `txn_id`.
    pub txn_id: Option<String>,
    /// The gateway's payment id (`prv_txn`), when there is one.
    pub payment_id: Option<i64>,
    /// The registry's date, UTC `YYYY-MM-DD HH:MM:SS`.
    pub registry_date: Option<String>,
    /// The registry's account.
    pub registry_account: Option<String>,
    /// The registry's sum in kopecks.
    pub registry_minor: Option<i64>,
    /// The gateway's `txn_date` (Moscow, as received).
    pub here_date: Option<String>,
    /// The gateway's account.
    pub here_account: Option<String>,
    /// The gateway's sum in kopecks.
    pub here_minor: Option<i64>,
    /// Why, in words.
    pub reason: String,
}

/// Totals of one Moscow day (or of the whole file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// The day, `None` for the whole file.
    pub day: Option<NaiveDate>,
    /// Payments in the registry.
    pub registry_count: u64,
    /// Their sum in kopecks.
    pub registry_minor: i64,
    /// Payments here.
    pub here_count: u64,
    /// Their sum in kopecks.
    pub here_minor: i64,
}

impl Totals {
    /// Registry minus here, in kopecks.
    pub fn difference(&self) -> i64 {
        self.registry_minor - self.here_minor
    }
}

/// The outcome of one reconciliation: its summary and its differing lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Everything but the lines.
    pub summary: Summary,
    /// The differences, ordered by kind (missing here first), then line / date.
    pub differences: Vec<Difference>,
}

/// A report's figures.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The detected encoding.
    pub encoding: String,
    /// The detected delimiter, as text (`;`, `,`, `tab`).
    pub delimiter: String,
    /// First and last Moscow day of the registry's payments.
    pub period: Option<(NaiveDate, NaiveDate)>,
    /// Registry lines that matched a payment here (same `txn_id`, sum and account).
    pub matched_count: u64,
    /// Their sum in kopecks.
    pub matched_minor: i64,
    /// How many differences of each kind, in [`Kind`]'s order.
    pub counts: [u64; 5],
    /// The whole period.
    pub total: Totals,
    /// Per Moscow day, when the period has several.
    pub days: Vec<Totals>,
    /// The total line's stated sum, when the file has one.
    pub total_line_minor: Option<i64>,
}

impl Summary {
    /// Number of differences of every kind.
    pub fn difference_count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `agrees`, or how many differences.
    pub fn verdict(&self) -> String {
        match self.difference_count() {
            0 => "agrees".to_owned(),
            1 => "1 difference".to_owned(),
            n => format!("{n} differences"),
        }
    }

    /// How many differences of `kind`.
    pub fn count(&self, kind: Kind) -> u64 {
        self.counts[kind as usize]
    }
}

/// Reconciles the registry read from `file` against `payments`.
pub fn reconcile<R: Read, P: Payments>(
    file: R,
    columns: Option<&ColumnMap>,
    payments: &mut P,
) -> Result<Report, ReconcileError<P::Error>> {
    let registry = reader::open(file, columns)?;
    let mut summary = Summary {
        encoding: registry.encoding.name().to_owned(),
        delimiter: match registry.delimiter {
            b'\t' => "tab".to_owned(),
            d => char::from(d).to_string(),
        },
        ..Summary::default()
    };
    let mut state = State::default();
    let mut batch: Vec<Line> = Vec::with_capacity(BATCH);
    let mut first_error: Option<reader::LineError> = None;
    for item in registry {
        match item {
            ReadItem::Line(l) => {
                if let Some(&first) = state.seen.get(&l.key) {
                    state.push(Difference {
                        kind: Some(Kind::Malformed),
                        line: Some(l.line),
                        txn_id: Some(l.txn_id),
                        reason: format!("txn_id repeats line {first}"),
                        ..Difference::default()
                    });
                    continue;
                }
                state.seen.insert(l.key, l.line);
                let day = state.days.entry(l.day).or_default();
                day.registry_count += 1;
                day.registry_minor += l.sum_minor;
                batch.push(l);
                if batch.len() == BATCH {
                    state.check(&mut batch, payments)?;
                }
            }
            ReadItem::Error(e) => {
                first_error.get_or_insert_with(|| e.clone());
                state.push(Difference {
                    kind: Some(Kind::Malformed),
                    line: Some(e.line),
                    reason: e.reason,
                    ..Difference::default()
                });
            }
            ReadItem::Total(t) => state.total_line = Some(t),
        }
    }
    state.check(&mut batch, payments)?;
    if state.seen.is_empty() {
        return Err(match first_error {
            Some(e) => NotARegistry::NoPayments {
                line: e.line,
                reason: e.reason,
            },
            None => NotARegistry::Empty,
        }
        .into());
    }
    let first = *state.days.keys().next().unwrap_or(&NaiveDate::MIN);
    let last = *state.days.keys().next_back().unwrap_or(&NaiveDate::MIN);
    summary.period = Some((first, last));
    let (from, to) = (
        format!("{}000000", first.format("%Y%m%d")),
        format!("{}235959", last.format("%Y%m%d")),
    );
    let mut missing = Vec::new();
    payments
        .in_period(&from, &to, &mut |p| {
            let day = NaiveDate::parse_from_str(p.txn_date.get(..8).unwrap_or(""), "%Y%m%d")
                .unwrap_or(first);
            let totals = state.days.entry(day).or_default();
            totals.here_count += 1;
            totals.here_minor += p.sum_minor;
            let key = reader::canonical_txn_id(&p.code).map(|(_, k)| k);
            if !key.is_some_and(|k| state.seen.contains_key(&k)) {
                missing.push(Difference {
                    kind: Some(Kind::MissingFromRegistry),
                    txn_id: Some(p.code),
                    payment_id: Some(p.id),
                    here_date: Some(p.txn_date),
                    here_account: Some(p.account),
                    here_minor: Some(p.sum_minor),
                    reason: "QIWI's registry does not list this payment".into(),
                    ..Difference::default()
                });
            }
        })
        .map_err(ReconcileError::Payments)?;
    missing.sort_by(|a, b| (&a.here_date, a.payment_id).cmp(&(&b.here_date, b.payment_id)));
    for d in missing {
        state.push(d);
    }
    let mut total = Totals::default();
    for (day, t) in &mut state.days {
        t.day = Some(*day);
        total.registry_count += t.registry_count;
        total.registry_minor += t.registry_minor;
        total.here_count += t.here_count;
        total.here_minor += t.here_minor;
    }
    summary.total = total;
    if state.days.len() > 1 {
        summary.days = state.days.values().copied().collect();
    }
    if let Some(t) = state.total_line.take() {
        summary.total_line_minor = Some(t.sum_minor);
        if t.sum_minor != total.registry_minor {
            state.push(Difference {
                kind: Some(Kind::Total),
                line: Some(t.line),
                registry_minor: Some(t.sum_minor),
                reason: format!(
                    "the total line says {}, the registry's payments add up to {}",
                    render::money(t.sum_minor),
                    render::money(total.registry_minor)
                ),
                ..Difference::default()
            });
        }
    }
    summary.matched_count = state.matched_count;
    summary.matched_minor = state.matched_minor;
    let mut differences = state.differences;
    // Stable: within a kind, the order they were found (line order; dates for missing).
    differences.sort_by_key(|d| d.kind);
    for d in &differences {
        if let Some(k) = d.kind {
            summary.counts[k as usize] += 1;
        }
    }
    Ok(Report {
        summary,
        differences,
    })
}

/// What the reconciliation accumulates while streaming.
#[derive(Default)]
struct State {
    /// Every registry `txn_id` read, with its line: bounded by the file's lines, a few dozen
    /// bytes each.
    seen: HashMap<u128, u64>,
    days: BTreeMap<NaiveDate, Totals>,
    differences: Vec<Difference>,
    matched_count: u64,
    matched_minor: i64,
    total_line: Option<reader::Total>,
}

impl State {
    fn push(&mut self, d: Difference) {
        self.differences.push(d);
    }

    /// Looks a batch of registry lines up and files each as a match or a difference.
    fn check<P: Payments>(
        &mut self,
        batch: &mut Vec<Line>,
        payments: &mut P,
    ) -> Result<(), ReconcileError<P::Error>> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = batch.iter().map(|l| l.txn_id.as_str()).collect();
        let found = payments.find(&ids).map_err(ReconcileError::Payments)?;
        let mut by_key: HashMap<u128, Payment> = found
            .into_iter()
            .filter_map(|p| Some((reader::canonical_txn_id(&p.code)?.1, p)))
            .collect();
        for l in batch.drain(..) {
            let registry_date = Some(utc_text(l.date_utc));
            match by_key.remove(&l.key) {
                None => self.push(Difference {
                    kind: Some(Kind::MissingHere),
                    line: Some(l.line),
                    txn_id: Some(l.txn_id),
                    registry_date,
                    registry_account: Some(l.account),
                    registry_minor: Some(l.sum_minor),
                    reason: "the gateway has no payment with this txn_id".into(),
                    ..Difference::default()
                }),
                Some(p) if p.sum_minor == l.sum_minor && p.account == l.account => {
                    self.matched_count += 1;
                    self.matched_minor += l.sum_minor;
                }
                Some(p) => {
                    let mut what = Vec::new();
                    if p.sum_minor != l.sum_minor {
                        what.push(format!(
                            "sum {} in the registry, {} here",
                            render::money(l.sum_minor),
                            render::money(p.sum_minor)
                        ));
                    }
                    if p.account != l.account {
                        what.push("account differs".to_owned());
                    }
                    self.push(Difference {
                        kind: Some(Kind::Different),
                        line: Some(l.line),
                        txn_id: Some(l.txn_id),
                        payment_id: Some(p.id),
                        registry_date,
                        registry_account: Some(l.account),
                        registry_minor: Some(l.sum_minor),
                        here_date: Some(p.txn_date),
                        here_account: Some(p.account),
                        here_minor: Some(p.sum_minor),
                        reason: what.join("; "),
                    });
                }
            }
        }
        Ok(())
    }
}

/// What went wrong in [`run`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The file is not a registry: no report is stored.
    #[error("not a registry: {0}")]
    NotARegistry(#[from] NotARegistry),
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Reading payments or storing the report failed.
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
}

/// Where the registry comes from.
pub enum Source {
    /// A file on disk, streamed.
    File(std::path::PathBuf),
    /// An upload, already in memory (bounded by the upload limit).
    Bytes(Vec<u8>),
}

/// Reconciles a registry against the database on its read pool (a blocking thread; pays are
/// not held up), then stores the report: its row in one writer job, its lines in jobs of
/// [`crate::db::reconcile::WRITE_CHUNK`]. Returns the stored report's id, the file's hex
/// SHA-256 and the report.
pub async fn run(
    db: &crate::db::Db,
    source: Source,
    file_name: String,
    columns: Option<ColumnMap>,
) -> Result<(i64, String, Report), RunError> {
    let (sha256, report) = db
        .read(move |conn| {
            let mut stored = crate::db::reconcile::Stored(conn);
            let result = match &source {
                Source::File(path) => std::fs::File::open(path)
                    .and_then(|f| sha256(std::io::BufReader::new(f)))
                    .map_err(RunError::Io)
                    .and_then(|sha| {
                        let f = std::fs::File::open(path)?;
                        Ok((sha, reconcile(f, columns.as_ref(), &mut stored)))
                    }),
                Source::Bytes(b) => sha256(&b[..])
                    .map_err(RunError::Io)
                    .map(|sha| (sha, reconcile(&b[..], columns.as_ref(), &mut stored))),
            };
            Ok(result.and_then(|(sha, r)| match r {
                Ok(r) => Ok((sha, r)),
                Err(ReconcileError::NotARegistry(e)) => Err(RunError::NotARegistry(e)),
                Err(ReconcileError::Payments(e)) => Err(RunError::Db(e)),
            }))
        })
        .await??;
    let summary = report.summary.clone();
    let sha = sha256.clone();
    let id = db
        .writer()
        .write(move |c| crate::db::reconcile::insert(c, &file_name, &sha, &summary))
        .await?;
    for chunk in report.differences.chunks(crate::db::reconcile::WRITE_CHUNK) {
        let chunk = chunk.to_vec();
        db.writer()
            .write(move |c| crate::db::reconcile::insert_lines(c, id, &chunk))
            .await?;
    }
    Ok((id, sha256, report))
}

/// Hex SHA-256 of everything `r` yields.
fn sha256(mut r: impl Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match r.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn utc_text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway's payments as a vector: what the unit tests reconcile against.
    struct Stored(Vec<Payment>);

    impl Payments for Stored {
        type Error = std::convert::Infallible;
        fn find(&mut self, ids: &[&str]) -> Result<Vec<Payment>, Self::Error> {
            Ok(self
                .0
                .iter()
                .filter(|p| ids.contains(&p.code.as_str()))
                .cloned()
                .collect())
        }
        fn in_period(
            &mut self,
            from: &str,
            to: &str,
            each: &mut dyn FnMut(Payment),
        ) -> Result<(), Self::Error> {
            for p in &self.0 {
                if (from..=to).contains(&p.txn_date.as_str()) {
                    each(p.clone());
                }
            }
            Ok(())
        }
    }

    fn pay(id: i64, code: &str, account: &str, sum_minor: i64, txn_date: &str) -> Payment {
        Payment {
            id,
            code: code.into(),
            account: account.into(),
            sum_minor,
            txn_date: txn_date.into(),
        }
    }

    #[test]
    fn every_kind_of_difference_is_found_and_totalled_per_day() {
        let mut here = Stored(vec![
            pay(1, "1001", "acc1", 10_000, "20240201100000"),
            pay(2, "1002", "acc2", 20_000, "20240201110000"),
            pay(3, "1003", "acc3", 30_000, "20240202120000"),
            pay(4, "1004", "acc4", 40_000, "20240202130000"),
            // Outside the period: never listed as missing from the registry.
            pay(5, "1005", "acc5", 50_000, "20240203000000"),
            pay(6, "1006", "acc6", 60_000, "20240201235959"),
        ]);
        let registry = "txn_id;date;account;sum\n\
                        01001;01.02.2024 10:00:00;acc1;100,00\n\
                        1002;01.02.2024 11:00:00;acc2;250,00\n\
                        1003;02.02.2024 12:00:00;other;300,00\n\
                        1009;02.02.2024 15:00:00;acc9;90,00\n\
                        1001;01.02.2024 10:00:00;acc1;100,00\n\
                        oops;01.02.2024 10:00:00;acc1;100,00\n\
                        Итого;;;770,00\n";
        let report = reconcile(registry.as_bytes(), None, &mut here).unwrap();
        let s = &report.summary;
        assert_eq!((s.matched_count, s.matched_minor), (1, 10_000));
        assert_eq!(s.verdict(), "8 differences");
        type Row<'a> = (Kind, Option<u64>, Option<&'a str>, Option<i64>, &'a str);
        let got: Vec<Row<'_>> = report
            .differences
            .iter()
            .map(|d| {
                (
                    d.kind.unwrap(),
                    d.line,
                    d.txn_id.as_deref(),
                    d.payment_id,
                    d.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Kind::MissingHere,
                    Some(5),
                    Some("1009"),
                    None,
                    "the gateway has no payment with this txn_id"
                ),
                (
                    Kind::MissingFromRegistry,
                    None,
                    Some("1006"),
                    Some(6),
                    "QIWI's registry does not list this payment"
                ),
                (
                    Kind::MissingFromRegistry,
                    None,
                    Some("1004"),
                    Some(4),
                    "QIWI's registry does not list this payment"
                ),
                (
                    Kind::Different,
                    Some(3),
                    Some("1002"),
                    Some(2),
                    "sum 250.00 in the registry, 200.00 here"
                ),
                (
                    Kind::Different,
                    Some(4),
                    Some("1003"),
                    Some(3),
                    "account differs"
                ),
                (
                    Kind::Malformed,
                    Some(6),
                    Some("1001"),
                    None,
                    "txn_id repeats line 2"
                ),
                (
                    Kind::Malformed,
                    Some(7),
                    None,
                    None,
                    "txn_id \"oops\" is not 1-20 digits"
                ),
                (
                    Kind::Total,
                    Some(8),
                    None,
                    None,
                    "the total line says 770.00, the registry's payments add up to 740.00"
                ),
            ]
        );
        let missing = &report.differences[0];
        assert_eq!(
            missing.registry_date.as_deref(),
            Some("2024-02-02 12:00:00")
        );
        assert_eq!(missing.registry_minor, Some(9_000));
        let day = |d: &Totals| {
            (
                d.day.unwrap().to_string(),
                d.registry_count,
                d.registry_minor,
                d.here_count,
                d.here_minor,
                d.difference(),
            )
        };
        assert_eq!(
            s.days.iter().map(day).collect::<Vec<_>>(),
            vec![
                ("2024-02-01".into(), 2, 35_000, 3, 90_000, -55_000),
                ("2024-02-02".into(), 2, 39_000, 2, 70_000, -31_000),
            ]
        );
        assert_eq!(
            (
                s.total.registry_count,
                s.total.registry_minor,
                s.total.here_count,
                s.total.here_minor
            ),
            (4, 74_000, 5, 160_000)
        );
        assert_eq!(s.total_line_minor, Some(77_000));
    }

    #[test]
    fn a_matching_registry_agrees_and_batches_cover_every_line() {
        let n = BATCH * 2 + 7;
        let mut text = String::from("TXN_ID,TXN_DATE,ACCOUNT,SUM\n");
        let mut stored = Vec::new();
        for i in 0..n {
            text.push_str(&format!(
                "{},20240301120000,a{i},1.{:02}\n",
                5000 + i,
                i % 100
            ));
            stored.push(pay(
                i as i64,
                &(5000 + i).to_string(),
                &format!("a{i}"),
                100 + (i % 100) as i64,
                "20240301120000",
            ));
        }
        let report = reconcile(text.as_bytes(), None, &mut Stored(stored)).unwrap();
        assert_eq!(report.summary.verdict(), "agrees");
        assert_eq!(report.summary.matched_count, n as u64);
        assert!(report.summary.days.is_empty(), "one day: no per-day table");
        assert_eq!(report.summary.total.difference(), 0);
    }

    #[test]
    fn a_file_with_no_readable_payment_is_not_a_registry() {
        let err = reconcile(
            &b"txn_id;date;account;sum\nx;y;z;w\n"[..],
            None,
            &mut Stored(vec![]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a registry: no line could be read as a payment; the first problem: line 2: \
             txn_id \"x\" is not 1-20 digits"
        );
    }
}
