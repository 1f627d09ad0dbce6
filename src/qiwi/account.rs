//! The payer's `account`.

use regex::Regex;

use super::Rejection;

/// The default `account_pattern`: 1-200 characters, none of them white space, control
/// characters, format characters (general category Cf: bidi controls, zero-width characters)
/// or other default-ignorable (invisible) code points such as fillers and variation
/// selectors, so an account can never look like another (issue 15 point 5).
pub const DEFAULT_ACCOUNT_PATTERN: &str =
    r"^[^\s\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]{1,200}$";

/// Compiles an `account_pattern` so that it must match the WHOLE account: `[0-9]{10}` means
/// exactly ten digits, not ten digits somewhere inside (issue 15 point 5).
pub fn anchored_pattern(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!(r"\A(?:{pattern})\z"))
}

/// An `account` that matches the configured `account_pattern` as a whole.
///
/// The configuration compiles `account_pattern` anchored at both ends (`\A(?:...)\z`), so a
/// pattern like `[0-9]{10}` matches ten digits and nothing around them. Missing or empty is the
/// protocol's 300, no match is 4 (`shared/spec/qiwi-protocol.md`, Parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account(String);

impl Account {
    /// Parses an `account` value against `pattern` (already anchored by the configuration).
    pub fn parse(s: &str, pattern: &Regex) -> Result<Account, Rejection> {
        if s.is_empty() {
            return Err(Rejection::Malformed("account is missing"));
        }
        if !pattern.is_match(s) {
            return Err(Rejection::BadAccount);
        }
        Ok(Account(s.to_owned()))
    }

    /// An account the caller has already matched to the configured pattern.
    pub(super) fn matched(s: String) -> Account {
        Account(s)
    }

    /// The account as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account as received, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str, pattern: &str) -> u16 {
        let re = anchored_pattern(pattern).unwrap();
        match Account::parse(s, &re) {
            Ok(a) => {
                assert_eq!(a.as_str(), s);
                0
            }
            Err(r) => r.result_code().code(),
        }
    }

    #[test]
    fn the_fuzz_crate_uses_the_default_pattern() {
        let fuzz = include_str!("../../fuzz/src/qiwi.rs");
        let anchored = format!(r"\A(?:{DEFAULT_ACCOUNT_PATTERN})\z");
        assert!(fuzz.contains(&anchored), "update fuzz/src/qiwi.rs");
    }

    #[test]
    fn the_docs_quote_the_real_default_pattern() {
        for (doc, text) in [
            ("docs/protocol.md", include_str!("../../docs/protocol.md")),
            ("README.md", include_str!("../../README.md")),
        ] {
            assert!(
                text.contains(&format!("`{DEFAULT_ACCOUNT_PATTERN}`")),
                "{doc} must quote the default account_pattern"
            );
        }
    }

    #[test]
    fn a_pattern_matches_the_whole_account() {
        let ten = "[0-9]{10}";
        assert_eq!(code("1234567890", ten), 0);
        assert_eq!(code("x1234567890y", ten), 4);
        assert_eq!(code("12345678901234", ten), 4);
        assert_eq!(code("123456789", ten), 4);
        // an alternation is anchored as a whole, not only its first branch
        assert_eq!(code("ab", "a|ab"), 0);
        assert_eq!(code("abc", "a|ab"), 4);
        // already anchored patterns keep working
        assert_eq!(code("1234567890", "^[0-9]{10}$"), 0);
        assert_eq!(code("", ten), 300);
    }

    #[test]
    fn the_default_refuses_invisible_and_direction_changing_characters() {
        let d = DEFAULT_ACCOUNT_PATTERN;
        assert_eq!(code("79001234567", d), 0);
        assert_eq!(code("Иванов-42", d), 0);
        assert_eq!(code(&"a".repeat(200), d), 0);
        assert_eq!(code(&"a".repeat(201), d), 4);
        for bad in [
            "\u{202E}RTL1234", // right-to-left override
            "123\u{200B}456",  // zero-width space
            "123\u{200C}456",  // zero-width non-joiner
            "123\u{200D}456",  // zero-width joiner
            "123\u{2060}456",  // word joiner
            "\u{FEFF}123",     // byte order mark
            "123\u{2066}456",  // left-to-right isolate
            "123\u{061C}456",  // Arabic letter mark
            "123\u{00AD}456",  // soft hyphen
            "123\u{180E}456",  // Mongolian vowel separator
            "123\u{3164}456",  // Hangul filler
            "123\u{115F}456",  // Hangul choseong filler
            "123\u{FE0F}456",  // variation selector
            "123\u{034F}456",  // combining grapheme joiner
            "123\u{1}456",     // control
            "123 456",         // space
            "123\u{00A0}456",  // no-break space
            "123\u{2028}456",  // line separator
        ] {
            assert_eq!(code(bad, d), 4, "{bad:?}");
        }
    }
}
