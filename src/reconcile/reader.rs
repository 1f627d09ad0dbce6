//! Reading QIWI's payment registry: a CSV-like text file agreed per contract.
//!
//! The file is streamed: the first 64 KiB decide the encoding (UTF-8, with or without BOM,
//! else windows-1251) and the delimiter (`;`, `,` or tab, the most frequent on the first
//! line); then the `csv` crate reads it record by record as bytes (both encodings keep ASCII
//! as is, so the delimiters and quotes are found before decoding), and each field is decoded
//! with `encoding_rs`. Memory does not grow with the file.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Chain, Cursor, Read};
use std::rc::Rc;

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Europe::Moscow;

use crate::qiwi::Amount;

/// How much of the file decides its encoding and delimiter.
const SNIFF: usize = 64 * 1024;
/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Header names understood without configuration, per column (compared in lower case).
const DEFAULT_NAMES: [&[&str]; 4] = [&["txn_id"], &["txn_date", "date"], &["account"], &["sum"]];
/// What the four columns are called in messages.
const COLUMN: [&str; 4] = ["txn_id", "date", "account", "sum"];
/// First words of a total (footer) line, compared in lower case.
const TOTAL_WORDS: [&str; 4] = ["итого", "всего", "total", "sum total"];

/// Which columns hold `txn_id`, date, account and sum: the `reconcile_columns` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnMap {
    /// Header names (compared case-insensitively), in the order txn_id, date, account, sum.
    Names([String; 4]),
    /// 0-based column positions, in the order txn_id, date, account, sum; a header row, if
    /// any, is recognised by a `txn_id` that is not a number and skipped.
    Positions([usize; 4]),
}

impl ColumnMap {
    /// Parses `reconcile_columns`: four entries separated by commas, in the order txn_id,
    /// date, account, sum; either all header names (`"Номер,Дата,Счёт,Сумма"`) or all 1-based
    /// column numbers (`"1,3,2,4"`).
    pub fn parse(s: &str) -> Result<ColumnMap, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let Ok(parts) = <[&str; 4]>::try_from(parts) else {
            return Err(
                "needs four entries separated by commas: txn_id, date, account, sum".into(),
            );
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err("has an empty entry".into());
        }
        let numbers: Vec<Option<usize>> = parts.iter().map(|p| p.parse::<usize>().ok()).collect();
        if numbers.iter().all(Option::is_some) {
            let mut pos = [0; 4];
            for (slot, n) in pos.iter_mut().zip(numbers.into_iter().flatten()) {
                if n == 0 {
                    return Err("column numbers start at 1".into());
                }
                *slot = n - 1;
            }
            Ok(ColumnMap::Positions(pos))
        } else if numbers.iter().all(Option::is_none) {
            Ok(ColumnMap::Names(parts.map(str::to_lowercase)))
        } else {
            Err("mixes column numbers and names: use one or the other".into())
        }
    }
}

/// Why a file is not a registry at all: one message, and no report is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotARegistry {
    /// Nothing in it.
    #[error("the file is empty")]
    Empty,
    /// NUL bytes: a spreadsheet, an archive, an image, UTF-16 text...
    #[error("the file is binary (a spreadsheet or archive?), not a text registry: save it as CSV")]
    Binary,
    /// A web page, e.g. a login page saved instead of the registry.
    #[error("the file is an HTML page, not a registry")]
    Html,
    /// The first line has no `;`, `,` or tab.
    #[error("no column separator (; , or tab) on the first line")]
    NoDelimiter,
    /// The columns could not be found.
    #[error("{0}")]
    Columns(String),
    /// No line could be read as a payment.
    #[error("no line could be read as a payment; the first problem: line {line}: {reason}")]
    NoPayments {
        /// The first malformed line.
        line: u64,
        /// Why it is malformed.
        reason: String,
    },
    /// Reading the file failed.
    #[error("cannot read the file: {0}")]
    Io(String),
}

/// The text encodings a registry comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (a leading BOM is skipped).
    Utf8,
    /// windows-1251 (Cyrillic).
    Windows1251,
}

impl Encoding {
    /// Its usual name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Windows1251 => "windows-1251",
        }
    }
}

/// One payment line of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its line number in the file (1-based).
    pub line: u64,
    /// The canonical `txn_id` (see [`canonical_txn_id`]).
    pub txn_id: String,
    /// The `txn_id` as a number, for comparing.
    pub key: u128,
    /// QIWI's date converted from Moscow time to UTC.
    pub date_utc: NaiveDateTime,
    /// The Moscow calendar day of the payment.
    pub day: NaiveDate,
    /// The account, decoded.
    pub account: String,
    /// The sum in kopecks.
    pub sum_minor: i64,
}

/// A line that could not be read, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// Its line number in the file (1-based).
    pub line: u64,
    /// Why, in words.
    pub reason: String,
}

/// The total (footer) line: what the registry says its lines add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Total {
    /// Its line number.
    pub line: u64,
    /// The stated total in kopecks.
    pub sum_minor: i64,
}

/// What one step of reading yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A payment.
    Line(Line),
    /// A malformed line.
    Error(LineError),
    /// The total line.
    Total(Total),
}

/// A registry being read, record by record.
pub struct Registry<R: Read> {
    csv: csv::Reader<Newlines<Chain<Cursor<Vec<u8>>, R>>>,
    /// Offsets of the newlines read but not yet passed by a record.
    newlines: Rc<RefCell<VecDeque<(u64, bool)>>>,
    /// Newlines passed: the line number of the next record, less one.
    lines_before: u64,
    /// The detected encoding.
    pub encoding: Encoding,
    /// The detected delimiter.
    pub delimiter: u8,
    columns: [usize; 4],
    /// The first record when it was a payment, not a header.
    pending: Option<csv::ByteRecord>,
    record: csv::ByteRecord,
}

/// Opens a registry: sniffs encoding and delimiter, reads the header row (or the first line)
/// and places the columns. Errors when the file is not a registry at all.
pub fn open<R: Read>(mut input: R, map: Option<&ColumnMap>) -> Result<Registry<R>, NotARegistry> {
    let mut head = Vec::with_capacity(SNIFF);
    (&mut input)
        .take(SNIFF as u64)
        .read_to_end(&mut head)
        .map_err(|e| NotARegistry::Io(e.to_string()))?;
    let bom = head.starts_with(BOM);
    if bom {
        head.drain(..BOM.len());
    }
    let first = head.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(NotARegistry::Empty);
    };
    if head.contains(&0) {
        return Err(NotARegistry::Binary);
    }
    if head[first] == b'<' {
        return Err(NotARegistry::Html);
    }
    let encoding = match std::str::from_utf8(&head) {
        Ok(_) => Encoding::Utf8,
        // Cut in the middle of a character at the end of the sample: still UTF-8.
        Err(e) if e.error_len().is_none() => Encoding::Utf8,
        Err(_) if bom => Encoding::Utf8,
        Err(_) => Encoding::Windows1251,
    };
    let delimiter = sniff_delimiter(&head[first..]).ok_or(NotARegistry::NoDelimiter)?;
    let newlines = Rc::new(RefCell::new(VecDeque::new()));
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(Newlines {
            inner: Cursor::new(head).chain(input),
            offset: 0,
            prev: 0,
            seen: newlines.clone(),
        });
    let mut record = csv::ByteRecord::new();
    // Skip blank lines before the first record (csv already skips empty ones).
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => return Err(NotARegistry::Empty),
            Ok(true) if record.iter().all(<[u8]>::is_empty) => continue,
            Ok(true) => break,
            Err(e) => return Err(NotARegistry::Io(e.to_string())),
        }
    }
    let decode = |b: &[u8]| decode(encoding, b).map(|c| c.trim().to_lowercase());
    let (columns, header) = match map {
        None | Some(ColumnMap::Names(_)) => {
            let names: Vec<String> = record
                .iter()
                .map(|f| decode(f).unwrap_or_default())
                .collect();
            let wanted: [Vec<&str>; 4] = match map {
                Some(ColumnMap::Names(n)) => n.each_ref().map(|s| vec![s.as_str()]),
                _ => DEFAULT_NAMES.map(<[&str]>::to_vec),
            };
            let mut columns = [0; 4];
            let mut missing = Vec::new();
            for (i, want) in wanted.iter().enumerate() {
                match names.iter().position(|n| want.contains(&n.as_str())) {
                    Some(p) => columns[i] = p,
                    None => missing.push(want.join(" or ")),
                }
            }
            if !missing.is_empty() {
                return Err(NotARegistry::Columns(format!(
                    "the first line does not name the column{} {} (it has: {}); name them in \
                     the file or set reconcile_columns",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    shorten(&names.join(", "), 200),
                )));
            }
            (columns, true)
        }
        Some(ColumnMap::Positions(p)) => {
            let need = p.iter().max().map_or(0, |m| m + 1);
            if record.len() < need {
                return Err(NotARegistry::Columns(format!(
                    "reconcile_columns asks for column {need} but the first line has {} \
                     (separator {:?})",
                    record.len(),
                    char::from(delimiter)
                )));
            }
            let txn = decode(record.get(p[0]).unwrap_or_default()).unwrap_or_default();
            (*p, canonical_txn_id(&txn).is_none())
        }
    };
    let pending = (!header).then(|| record.clone());
    Ok(Registry {
        csv,
        newlines,
        lines_before: 0,
        encoding,
        delimiter,
        columns,
        pending,
        record,
    })
}

/// Counts lines under the `csv` reader, which skips blank lines without counting them in its
/// own line numbers: every newline's offset is queued, and a record's line is one more than
/// the newlines before its first byte. The queue holds only what `csv` has buffered ahead.
struct Newlines<R> {
    inner: R,
    offset: u64,
    prev: u8,
    /// Offset of each `\n` and whether a `\r` came just before it.
    seen: Rc<RefCell<VecDeque<(u64, bool)>>>,
}

impl<R: Read> Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.borrow_mut();
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                seen.push_back((self.offset + i as u64, self.prev == b'\r'));
            }
            self.prev = b;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R: Read> Iterator for Registry<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(rec) = self.pending.take() {
            return Some(self.parse(&rec));
        }
        let mut rec = std::mem::take(&mut self.record);
        let item = loop {
            match self.csv.read_byte_record(&mut rec) {
                Ok(false) => break None,
                Ok(true) if rec.iter().all(<[u8]>::is_empty) => continue,
                Ok(true) => break Some(self.parse(&rec)),
                Err(e) => {
                    let line = e.position().map_or(0, |p| self.line_at(p.byte()));
                    break Some(Item::Error(LineError {
                        line,
                        reason: format!("cannot be read: {e}"),
                    }));
                }
            }
        };
        self.record = rec;
        item
    }
}

impl<R: Read> Registry<R> {
    /// The line number of the record `csv` places at byte `offset` (records come in order).
    /// `csv` places a record where it started looking, before the blank lines it skipped:
    /// those are skipped here too (a record never starts with a line break).
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut seen = self.newlines.borrow_mut();
        let mut pos = offset;
        while let Some(&(n, crlf)) = seen.front() {
            if n <= pos || (crlf && n == pos + 1) {
                pos = pos.max(n + 1);
                seen.pop_front();
                self.lines_before += 1;
            } else {
                break;
            }
        }
        self.lines_before + 1
    }

    fn parse(&mut self, rec: &csv::ByteRecord) -> Item {
        let line = rec.position().map_or(0, |p| self.line_at(p.byte()));
        match self.parse_fields(rec, line) {
            Ok(item) => item,
            Err(reason) => Item::Error(LineError { line, reason }),
        }
    }

    fn parse_fields(&self, rec: &csv::ByteRecord, line: u64) -> Result<Item, String> {
        let field = |i: usize| -> Result<Cow<'_, str>, String> {
            let col = self.columns[i];
            let bytes = rec.get(col).ok_or_else(|| {
                format!(
                    "has {} columns; {} is column {}",
                    rec.len(),
                    COLUMN[i],
                    col + 1
                )
            })?;
            decode(self.encoding, bytes)
                .ok_or_else(|| format!("{} is not valid {}", COLUMN[i], self.encoding.name()))
        };
        let first = rec
            .get(0)
            .and_then(|b| decode(self.encoding, b))
            .map(|s| s.trim().to_lowercase())
            .unwrap_or_default();
        if TOTAL_WORDS.iter().any(|w| first.starts_with(w)) {
            return self.parse_total(rec, line);
        }
        let txn = field(0)?;
        let (txn_id, key) = canonical_txn_id(&txn)
            .ok_or_else(|| format!("txn_id {:?} is not 1-20 digits", shorten(&txn, 40)))?;
        let date = field(1)?;
        let local = parse_date(&date).ok_or_else(|| {
            format!(
                "date {:?} is not DD.MM.YYYY HH:MM:SS, YYYY-MM-DD HH:MM:SS or YYYYMMDDHHMMSS",
                shorten(&date, 40)
            )
        })?;
        let date_utc = Moscow
            .from_local_datetime(&local)
            .earliest()
            .ok_or_else(|| format!("date {date:?} does not exist in Moscow time"))?
            .naive_utc();
        let account = field(2)?;
        if account.is_empty() {
            return Err("account is empty".into());
        }
        let sum = field(3)?;
        let sum_minor = parse_sum(&sum).ok_or_else(|| {
            format!(
                "sum {:?} is not a sum like 1500, 1 500,50 or 1500.50",
                shorten(&sum, 40)
            )
        })?;
        Ok(Item::Line(Line {
            line,
            txn_id,
            key,
            date_utc,
            day: local.date(),
            account: account.into_owned(),
            sum_minor,
        }))
    }

    /// The total line: its sum is in the sum column, or else the last field that is a sum.
    fn parse_total(&self, rec: &csv::ByteRecord, line: u64) -> Result<Item, String> {
        let as_sum = |b: &[u8]| decode(self.encoding, b).and_then(|s| parse_sum(&s));
        let sum = rec
            .get(self.columns[3])
            .and_then(as_sum)
            .or_else(|| rec.iter().skip(1).filter_map(as_sum).last())
            .ok_or("the total line has no sum")?;
        Ok(Item::Total(Total {
            line,
            sum_minor: sum,
        }))
    }
}

/// Decodes one field; `None` when it is not valid UTF-8 in a UTF-8 file (windows-1251 maps
/// every byte).
fn decode(encoding: Encoding, bytes: &[u8]) -> Option<Cow<'_, str>> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        Encoding::Windows1251 => Some(
            encoding_rs::WINDOWS_1251
                .decode_without_bom_handling(bytes)
                .0,
        ),
    }
}

/// The delimiter of the first line: the most frequent of `;`, tab and `,` outside quotes
/// (`;` wins a tie, since `,` is also the decimal comma).
fn sniff_delimiter(text: &[u8]) -> Option<u8> {
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b';' if !quoted => counts[0] += 1,
            b'\t' if !quoted => counts[1] += 1,
            b',' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let (best, n) = counts
        .iter()
        .enumerate()
        .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))?;
    (*n > 0).then_some([b';', b'\t', b','][best])
}

/// The canonical `txn_id`: 1-20 ASCII digits with leading zeros removed (`000881401` is
/// `881401`; all zeros is `0`), and its value. The protocol's rule (spec: `txn_id`).
pub fn canonical_txn_id(s: &str) -> Option<(String, u128)> {
    // The protocol's own rule (1-20 digits, leading zeros not significant): one payment is
    // one number here as on `/payment`.
    let id = crate::qiwi::TxnId::parse(s.trim()).ok()?;
    let t = id.canonical();
    Some((t.to_owned(), t.parse().ok()?))
}

/// A date in one of the three registry formats, as written (Moscow time).
pub fn parse_date(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) {
        // chrono's `%Y` is greedy and cannot split digits with no separator.
        let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
        let date = NaiveDate::from_ymd_opt(i32::try_from(n(0..4)?).ok()?, n(4..6)?, n(6..8)?)?;
        return date.and_hms_opt(n(8..10)?, n(10..12)?, n(12..14)?);
    }
    ["%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

/// A sum in kopecks: digits with optional thousands separated by spaces (`1 500`), and a
/// decimal point or comma with one or two decimals. Exact: never through a float.
pub fn parse_sum(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = match s.rfind(['.', ',']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    // Thousands: groups split by (non-breaking) spaces, the first of 1-3 digits, then 3.
    let groups: Vec<&str> = int.split([' ', '\u{a0}', '\u{202f}', '\u{2009}']).collect();
    if groups.len() > 1
        && (groups[0].is_empty() || groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3))
    {
        return None;
    }
    let mut plain = groups.concat();
    if let Some(f) = frac {
        plain.push('.');
        plain.push_str(f);
    }
    Amount::parse(&plain).ok().map(Amount::minor)
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], map: Option<&ColumnMap>) -> Result<Vec<Item>, NotARegistry> {
        Ok(open(bytes, map)?.collect())
    }

    fn lines(items: &[Item]) -> Vec<(u64, &str, &str, i64)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Line(l) => Some((l.line, l.txn_id.as_str(), l.account.as_str(), l.sum_minor)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sums_are_exact_kopecks_with_point_comma_and_thousands() {
        for (s, k) in [
            ("1500", 150_000),
            ("1 500,50", 150_050),
            ("1\u{a0}500.5", 150_050),
            ("12 345 678,09", 1_234_567_809),
            ("0,01", 1),
            ("10.45", 1045),
        ] {
            assert_eq!(parse_sum(s), Some(k), "{s}");
        }
        for s in [
            "", "1,500.00", "1 50,00", "15 00", "-10", "10,456", "1e3", "abc", " ,5",
        ] {
            assert_eq!(parse_sum(s), None, "{s:?}");
        }
    }

    #[test]
    fn dates_in_the_three_formats() {
        let want = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_opt(23, 5, 9)
            .unwrap();
        for s in [
            "29.02.2024 23:05:09",
            "2024-02-29 23:05:09",
            "20240229230509",
        ] {
            assert_eq!(parse_date(s), Some(want), "{s}");
        }
        for s in [
            "30.02.2024 10:00:00",
            "20240229250000",
            "2024-02-29",
            "29/02/2024 10:00:00",
        ] {
            assert_eq!(parse_date(s), None, "{s}");
        }
    }

    #[test]
    fn txn_ids_are_canonical() {
        assert_eq!(
            canonical_txn_id("000881401"),
            Some(("881401".into(), 881_401))
        );
        assert_eq!(canonical_txn_id("000"), Some(("0".into(), 0)));
        assert_eq!(
            canonical_txn_id("99999999999999999999").map(|t| t.1),
            Some(99_999_999_999_999_999_999)
        );
        for s in ["", "12a", "-1", "123456789012345678901", "1 2"] {
            assert_eq!(canonical_txn_id(s), None, "{s}");
        }
    }

    #[test]
    fn column_map_is_names_or_numbers() {
        assert_eq!(
            ColumnMap::parse("1, 3,2,4"),
            Ok(ColumnMap::Positions([0, 2, 1, 3]))
        );
        assert_eq!(
            ColumnMap::parse("Номер,Дата,Счёт,Сумма"),
            Ok(ColumnMap::Names(
                ["номер", "дата", "счёт", "сумма"].map(String::from)
            ))
        );
        for bad in ["1,2,3", "1,2,x,4", "0,1,2,3", "a,,b,c"] {
            assert!(ColumnMap::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_delimiter_and_both_encodings_read_the_same_lines() {
        let text = "TXN_ID;Date;Account;Sum;Terminal\n\
                    0001001;01.02.2024 10:00:00;Иванов;1 500,50;T1\n\
                    1002;2024-02-01 23:30:00;79001234567;10.00;T2\n";
        for delim in [";", ",", "\t"] {
            // A comma delimiter needs the decimal comma quoted.
            let t = if delim == "," {
                text.replace("1 500,50", "\"1 500,50\"").replace(';', ",")
            } else {
                text.replace(';', delim)
            };
            let utf8_bom = [BOM, t.as_bytes()].concat();
            let cp1251 = encoding_rs::WINDOWS_1251.encode(&t).0.into_owned();
            for (bytes, enc) in [
                (t.as_bytes().to_vec(), Encoding::Utf8),
                (utf8_bom, Encoding::Utf8),
                (cp1251, Encoding::Windows1251),
            ] {
                let reg = open(&bytes[..], None).unwrap();
                assert_eq!(reg.encoding, enc);
                assert_eq!(char::from(reg.delimiter).to_string(), delim);
                let items: Vec<Item> = reg.collect();
                assert_eq!(
                    lines(&items),
                    vec![
                        (2, "1001", "Иванов", 150_050),
                        (3, "1002", "79001234567", 1000)
                    ],
                    "{delim:?} {enc:?}"
                );
                let Item::Line(l) = &items[1] else { panic!() };
                // 23:30 in Moscow (UTC+3) is 20:30 UTC, on the Moscow day of the payment.
                assert_eq!(l.date_utc.to_string(), "2024-02-01 20:30:00");
                assert_eq!(l.day.to_string(), "2024-02-01");
            }
        }
    }

    #[test]
    fn malformed_lines_are_reported_and_the_rest_is_read() {
        let text = "txn_id;txn_date;account;sum\n\
                    1;20240201100000;a;1\n\
                    x1;20240201100000;a;1\n\
                    2;31.02.2024 10:00:00;a;1\n\
                    3;20240201100000;;1\n\
                    4;20240201100000;a;1,2,3\n\
                    5;20240201100000\n\
                    \n\
                    6;20240201100000;b;2\n\
                    Итого;;;3,00\n";
        let items = read(text.as_bytes(), None).unwrap();
        assert_eq!(lines(&items), vec![(2, "1", "a", 100), (9, "6", "b", 200)]);
        let errors: Vec<(u64, &str)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Error(e) => Some((e.line, e.reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            errors,
            vec![
                (3, "txn_id \"x1\" is not 1-20 digits"),
                (
                    4,
                    "date \"31.02.2024 10:00:00\" is not DD.MM.YYYY HH:MM:SS, YYYY-MM-DD HH:MM:SS or YYYYMMDDHHMMSS"
                ),
                (5, "account is empty"),
                (
                    6,
                    "sum \"1,2,3\" is not a sum like 1500, 1 500,50 or 1500.50"
                ),
                (7, "has 2 columns; account is column 3"),
            ]
        );
        assert_eq!(
            items.last(),
            Some(&Item::Total(Total {
                line: 10,
                sum_minor: 300
            }))
        );
    }

    #[test]
    fn line_numbers_count_blank_lines_and_crlf() {
        let text = "\r\ntxn_id;date;account;sum\r\n\r\n1;20240201100000;a;1\r\n\r\n\n\
                    x;20240201100000;a;1\r\n7;20240201100000;b;2";
        let items = read(text.as_bytes(), None).unwrap();
        assert_eq!(lines(&items), vec![(4, "1", "a", 100), (8, "7", "b", 200)]);
        assert!(
            matches!(&items[1], Item::Error(e) if e.line == 7),
            "{items:?}"
        );
    }

    #[test]
    fn positions_with_or_without_a_header() {
        let map = ColumnMap::parse("2,1,4,3").unwrap();
        for text in [
            "date,id,sum,acct\n20240201100000,7,5.00,x\n",
            "20240201100000,7,5.00,x\n",
        ] {
            let items = read(text.as_bytes(), Some(&map)).unwrap();
            assert_eq!(
                lines(&items),
                vec![(text.lines().count() as u64, "7", "x", 500)]
            );
        }
        let err = read(b"a,b\n1,2\n", Some(&map)).err().unwrap();
        assert!(err.to_string().contains("column 4"), "{err}");
        let named = ColumnMap::parse("Номер,Дата,Счёт,Сумма").unwrap();
        let text = "Сумма;Номер;Дата;Счёт\n10;5;20240201100000;acc\n";
        let bytes = encoding_rs::WINDOWS_1251.encode(text).0;
        assert_eq!(
            lines(&read(&bytes, Some(&named)).unwrap()),
            vec![(2, "5", "acc", 1000)]
        );
    }

    #[test]
    fn what_is_not_a_registry_gets_one_message() {
        for (bytes, want) in [
            (&b""[..], NotARegistry::Empty),
            (b"\xEF\xBB\xBF \n\n", NotARegistry::Empty),
            (b"PK\x03\x04\x00\x00binary", NotARegistry::Binary),
            (b"  <!doctype html><html>", NotARegistry::Html),
            (b"just some words\nmore\n", NotARegistry::NoDelimiter),
        ] {
            assert_eq!(read(bytes, None).err(), Some(want), "{bytes:?}");
        }
        let err = read(b"id;when;who;amount\n1;2;3;4\n", None).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the first line does not name the columns txn_id, txn_date or date, account, sum \
             (it has: id, when, who, amount); name them in the file or set reconcile_columns"
        );
    }
}
