//! Money: an exact sum in minor units (kopecks), never a float.

use std::fmt;

/// Largest sum accepted, in minor units: below 2^53 so the original product's float column
/// `sum` still holds it exactly.
const MAX_MINOR: i64 = 9_007_199_254_740_991;

/// A sum of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// Why a text is not an [`Amount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with an optional `.` and one or two decimals.
    #[error("not a sum like 10, 10.5 or 10.45")]
    Malformed,
    /// Well-formed but beyond what the gateway can store exactly.
    #[error("sum too large")]
    TooLarge,
}

impl Amount {
    /// Parses QIWI's `sum`: digits, optionally `.` and one or two digits. No sign, comma,
    /// exponent or white space.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f) || f.len() > 2) {
            return Err(AmountError::Malformed);
        }
        let int = int.trim_start_matches('0');
        // 16 integer digits already exceed MAX_MINOR / 100; stop before any overflow.
        if int.len() > 15 {
            return Err(AmountError::TooLarge);
        }
        let units: i64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| AmountError::Malformed)?
        };
        let cents: i64 = match frac {
            None => 0,
            Some(f) if f.len() == 1 => i64::from(f.as_bytes()[0] - b'0') * 10,
            Some(f) => f.parse().map_err(|_| AmountError::Malformed)?,
        };
        let minor = units * 100 + cents;
        if minor > MAX_MINOR {
            return Err(AmountError::TooLarge);
        }
        Ok(Amount(minor))
    }

    /// An amount of `minor` kopecks.
    pub const fn from_minor(minor: i64) -> Amount {
        Amount(minor)
    }

    /// The amount in minor units.
    pub const fn minor(self) -> i64 {
        self.0
    }
}

/// Always two decimals: `152.00`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_sums() {
        for (s, minor) in [
            ("10", 1000),
            ("10.5", 1050),
            ("10.45", 1045),
            ("0.01", 1),
            ("0", 0),
            ("007.10", 710),
            ("90071992547409.91", MAX_MINOR),
        ] {
            assert_eq!(Amount::parse(s), Ok(Amount(minor)), "{s}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_plain_sum() {
        for s in [
            "", ".", "10.", ".5", "10,5", "-1", "+1", "1e3", "10.456", "NaN", "inf", " 10", "10 ",
            "1.2.3", "١٠", "0x10",
        ] {
            assert_eq!(Amount::parse(s), Err(AmountError::Malformed), "{s:?}");
        }
    }

    #[test]
    fn rejects_sums_that_cannot_be_stored_exactly() {
        for s in [
            "100000000000000000000",
            "90071992547409.92",
            "9999999999999999.99",
        ] {
            assert_eq!(Amount::parse(s), Err(AmountError::TooLarge), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn display_and_parse_round_trip(minor in 0i64..=MAX_MINOR) {
            proptest::prop_assert_eq!(Amount::parse(&Amount(minor).to_string()), Ok(Amount(minor)));
        }
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Amount(15200).to_string(), "152.00");
        assert_eq!(Amount(1045).to_string(), "10.45");
        assert_eq!(Amount(5).to_string(), "0.05");
    }
}
