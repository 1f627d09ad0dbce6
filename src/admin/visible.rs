//! Request data shown as what it is: invisible and direction-changing characters are written
//! out as text, so a stored value can never look like another.
//!
//! An account of U+202E + `RTL1234` renders as `4321LTR`, and `123` + U+200B + `456` looks like
//! `123456`. Everything the admin pages render (through [`Html`], the escaper `askama.toml`
//! names for every `.html` template) and the CSV export writes (through [`text`]) shows such a
//! character as `\u{202E}`. The mapping is one-to-one: a backslash that could start such a
//! form (followed by `u`, by a backslash or by an invisible character) is written `\\`, so a
//! stored `\u{202E}` (seven visible characters) shows as `\\u{202E}`, not as the character.

use std::borrow::Cow;
use std::fmt::{self, Write};
use std::sync::LazyLock;

use regex::Regex;

/// Invisible or misleading characters: Unicode format characters (Cf: bidi controls,
/// zero-width characters, soft hyphen), default-ignorable code points (Hangul fillers,
/// variation selectors...), controls other than tab, line feed and carriage return, spaces
/// other than U+0020 (no-break, em, ideographic...), line and paragraph separators, private
/// use and unassigned code points, the blank Braille pattern; and the backslash, which
/// [`write_visible`] doubles where needed.
static SPECIAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"[[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Cc}\p{Zs}\p{Zl}\p{Zp}\p{Co}\p{Cn}\x{2800}]--[\t\n\r ]]|\\",
    )
    .expect("a valid character class")
});

/// Whether `c` is shown as `\u{...}` (see the module doc).
pub fn is_invisible(c: char) -> bool {
    c != '\\' && SPECIAL.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Writes `s` with every invisible character as `\u{HEX}` and backslashes doubled where they
/// could be read as such a form; `plain` writes the runs in between (HTML-escaping or not).
fn write_visible<W: Write>(
    dest: &mut W,
    s: &str,
    mut plain: impl FnMut(&mut W, &str) -> fmt::Result,
) -> fmt::Result {
    let mut last = 0;
    for m in SPECIAL.find_iter(s) {
        plain(dest, &s[last..m.start()])?;
        let c = m.as_str().chars().next().unwrap_or_default();
        if c == '\\' {
            let next = s[m.end()..].chars().next();
            if next.is_some_and(|n| n == 'u' || n == '\\' || is_invisible(n)) {
                dest.write_str("\\\\")?;
            } else {
                dest.write_char('\\')?;
            }
        } else {
            write!(dest, "\\u{{{:X}}}", u32::from(c))?;
        }
        last = m.end();
    }
    plain(dest, &s[last..])
}

/// `s` with its invisible characters made visible, for plain-text output such as the CSV
/// export. Borrowed when there was nothing to change.
pub fn text(s: &str) -> Cow<'_, str> {
    if !SPECIAL.is_match(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    // Writing to a String cannot fail.
    let _ = write_visible(&mut out, s, |d, run| d.write_str(run));
    Cow::Owned(out)
}

/// askama's HTML escaper plus [`text`]'s visible forms: the escaper of every `.html`
/// template (configured in `askama.toml`), so no page can forget it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

impl askama::filters::Escaper for Html {
    fn write_escaped_str<W: Write>(&self, mut dest: W, s: &str) -> fmt::Result {
        write_visible(&mut dest, s, |d, run| {
            askama::filters::Escaper::write_escaped_str(&askama::filters::Html, d, run)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_changing_characters_are_written_out() {
        assert_eq!(text("\u{202E}RTL1234"), "\\u{202E}RTL1234");
        assert_eq!(text("123\u{200B}456"), "123\\u{200B}456");
        for c in [
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{2066}',
            '\u{061C}',
            '\u{00A0}',
            '\u{3000}',
            '\u{2028}',
            '\u{3164}',
            '\u{115F}',
            '\u{FE0F}',
            '\u{E0041}',
            '\u{0007}',
            '\u{007F}',
            '\u{0085}',
            '\u{E000}',
            '\u{2800}',
        ] {
            assert!(is_invisible(c), "{:X}", u32::from(c));
            assert_eq!(
                text(&format!("a{c}b")),
                format!("a\\u{{{:X}}}b", u32::from(c))
            );
        }
        for plain in [
            "123456",
            "Иван Петров",
            "a b\tc\r\nd",
            "ñ",
            "日本",
            "a\\b",
            "C:\\x",
        ] {
            assert_eq!(text(plain), plain);
        }
    }

    #[test]
    fn a_written_out_form_cannot_be_forged_with_backslashes() {
        let real = text("\u{202E}x");
        let forged = text("\\u{202E}x");
        assert_eq!(real, "\\u{202E}x");
        assert_eq!(forged, "\\\\u{202E}x");
        assert_ne!(text("\\\u{202E}"), text("\\u{202E}"));
        assert_ne!(text("\\\\u{202E}"), text("\\u{202E}"));
        assert_eq!(text("\\\u{202E}"), "\\\\\\u{202E}");
    }

    #[test]
    fn the_html_escaper_escapes_markup_and_shows_invisibles() {
        let mut out = String::new();
        askama::filters::Escaper::write_escaped_str(&Html, &mut out, "<b>\u{202E}&\"'").unwrap();
        assert!(out.starts_with("&#60;b&#62;\\u{202E}&#38;"), "{out}");
        assert!(!out.contains('\u{202E}') && !out.contains('<'), "{out}");
    }
}
