//! QIWI's `txn_id`: one payment is one number.

use super::Rejection;

/// Longest `txn_id` accepted, in digits (the protocol's 1-20 digits; it can exceed `i64`, so
/// it is kept as text).
pub const MAX_DIGITS: usize = 20;

/// A well-formed `txn_id`: 1-20 ASCII digits, as received and as its canonical number.
///
/// QIWI's `txn_id` is an integer: leading zeros are not significant (`000881401` is
/// `881401`; `000` is `0`). Idempotency, storage (`qiwi_transaction.code`) and the webhook use
/// [`TxnId::canonical`]; the answer's `osmp_txn_id` echoes [`TxnId::received`]. Rule source:
/// `shared/spec/qiwi-protocol.md`, Parameters, and issue 11 point 5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnId {
    received: String,
    canonical: String,
}

impl TxnId {
    /// Parses a `txn_id` value; anything but 1-20 ASCII digits is the protocol's 300.
    pub fn parse(s: &str) -> Result<TxnId, Rejection> {
        if s.is_empty() {
            return Err(Rejection::Malformed("txn_id is missing"));
        }
        if s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::Malformed("txn_id must be 1-20 digits"));
        }
        Ok(TxnId {
            received: s.to_owned(),
            canonical: canonical(s).to_owned(),
        })
    }

    /// The number without leading zeros (`0` for all zeros): the payment's identity.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The value exactly as QIWI sent it, echoed as `osmp_txn_id`.
    pub fn received(&self) -> &str {
        &self.received
    }
}

/// The canonical form of a string of digits: leading zeros removed, `0` when nothing is left.
/// Text that is not all digits is returned unchanged (it is no number to canonicalise).
pub fn canonical(digits: &str) -> &str {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return digits;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_not_significant() {
        for (raw, canon) in [
            ("881401", "881401"),
            ("000881401", "881401"),
            ("0", "0"),
            ("000", "0"),
            ("10", "10"),
            ("00000000000000000001", "1"),
            ("99999999999999999999", "99999999999999999999"),
        ] {
            let t = TxnId::parse(raw).unwrap();
            assert_eq!(t.canonical(), canon, "{raw}");
            assert_eq!(t.received(), raw);
        }
    }

    #[test]
    fn anything_but_1_to_20_digits_is_300() {
        for raw in [
            "",
            "-1",
            "+1",
            "1a",
            " 1",
            "1 ",
            "１",
            "٣",
            "1.0",
            "000000000000000000001",
        ] {
            let r = TxnId::parse(raw).unwrap_err();
            assert_eq!(r.result_code().code(), 300, "{raw:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn padding_never_changes_the_number(n in 0u64..u64::MAX, zeros in 0usize..5) {
            let plain = n.to_string();
            let padded = format!("{}{plain}", "0".repeat(zeros));
            proptest::prop_assume!(padded.len() <= MAX_DIGITS);
            let t = TxnId::parse(&padded).unwrap();
            proptest::prop_assert_eq!(t.canonical(), plain.as_str());
        }
    }
}

#[cfg(test)]
mod migration_tests {
    use rusqlite::Connection;

    /// Migration 0004 on rows stored before canonical txn_ids: padded codes are renamed,
    /// collisions keep their stored code, nothing is lost.
    #[test]
    fn migration_0004_canonicalises_stored_codes() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE qiwi_transaction (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
             CREATE TABLE qiwi_http_log (id INTEGER PRIMARY KEY, txn_id TEXT);
             INSERT INTO qiwi_transaction (id, code) VALUES
                 (1, '000881401'), (2, '881401'), -- collision, the canonical one stored later
                 (3, '0007'), (4, '07'),          -- collision among padded ones: oldest wins
                 (5, '000'), (6, '0'),            -- zero: the canonical one exists
                 (7, '00042'), (8, '12');
             INSERT INTO qiwi_http_log (txn_id) VALUES ('000881401'), ('0'), ('00'), ('0x1'),
                 ('12'), (NULL), ('<0>');",
        )
        .unwrap();
        c.execute_batch(include_str!("../../migrations/0004_canonical_txn_id.sql"))
            .unwrap();
        let codes: Vec<(i64, String)> = c
            .prepare("SELECT id, code FROM qiwi_transaction ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want = [
            (1, "000881401"),
            (2, "881401"),
            (3, "7"),
            (4, "07"),
            (5, "000"),
            (6, "0"),
            (7, "42"),
            (8, "12"),
        ];
        let got: Vec<(i64, &str)> = codes.iter().map(|(i, c)| (*i, c.as_str())).collect();
        assert_eq!(got, want);
        let log: Vec<Option<String>> = c
            .prepare("SELECT txn_id FROM qiwi_http_log ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let log: Vec<Option<&str>> = log.iter().map(Option::as_deref).collect();
        assert_eq!(
            log,
            [
                Some("881401"),
                Some("0"),
                Some("0"),
                Some("0x1"),
                Some("12"),
                None,
                Some("<0>")
            ]
        );
    }
}
