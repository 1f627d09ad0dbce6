//! Secrets never printed: URLs shown without their user info, query values and fragment.
//!
//! A webhook or check URL may carry credentials (`https://user:pass@shop/hook?token=abc`).
//! Everything that prints or renders a configured URL (check-config, logs, the dashboard,
//! error messages, `Debug`) goes through [`url`] or [`text`].

use url::Url;

/// What replaces a secret.
pub const MASK: &str = "***";

/// `u` with the user name and password replaced by `***`, every query value replaced by
/// `***` (names kept, so the operator sees which parameters are set) and any fragment
/// replaced by `***`: `http://u:p@host/hook?token=abc` → `http://***:***@host/hook?token=***`.
pub fn url(u: &Url) -> String {
    let mut u = u.clone();
    // Both setters fail only for URLs that cannot have credentials, which then have none.
    if !u.username().is_empty() {
        let _ = u.set_username(MASK);
    }
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        if names.is_empty() {
            u.set_query(Some(MASK));
        } else {
            let mut q = u.query_pairs_mut();
            q.clear();
            for name in &names {
                q.append_pair(name, MASK);
            }
        }
    }
    if u.fragment().is_some() {
        u.set_fragment(Some(MASK));
    }
    u.to_string()
}

/// `s` with every URL in it (a whitespace-, quote- or bracket-delimited word containing
/// `://` that parses) masked as [`url`] does. For free text that may quote a URL, such as an
/// error message from a library or a configuration value that failed validation.
pub fn text(s: &str) -> String {
    if !s.contains("://") {
        return s.to_owned();
    }
    let delimiter = |c: char| c.is_whitespace() || "\"'`()<>[]{},;".contains(c);
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains("://") {
            match Url::parse(word) {
                Ok(u) => out.push_str(&url(&u)),
                // Unparseable but URL-like: it may still hold a secret, so hide all of it.
                Err(_) => out.push_str(MASK),
            }
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        if delimiter(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_query_values_and_fragments_are_masked() {
        let u = Url::parse("http://u:p4ss@host:8081/hook?token=abc&x=1#frag").unwrap();
        assert_eq!(url(&u), "http://***:***@host:8081/hook?token=***&x=***#***");
        let u = Url::parse("https://user@host/hook?tok3n").unwrap();
        assert_eq!(url(&u), "https://***@host/hook?tok3n=***");
        let u = Url::parse("https://shop.example/qiwi").unwrap();
        assert_eq!(url(&u), "https://shop.example/qiwi");
    }

    #[test]
    fn urls_inside_text_are_masked() {
        let s =
            "error sending request for url (http://u:s3cret@127.0.0.1:1/hook?token=abc): refused";
        let t = text(s);
        assert!(!t.contains("s3cret") && !t.contains("abc"), "{t}");
        assert!(
            t.contains("http://***:***@127.0.0.1:1/hook?token=***"),
            "{t}"
        );
        assert!(t.ends_with("): refused"), "{t}");
        assert_eq!(text("no url here"), "no url here");
        assert_eq!(text("bad http://u:p@ x"), "bad *** x");
    }
}
