//! The XML answer QIWI reads.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::{Amount, ResultCode};

/// Longest `osmp_txn_id` echoed back: a hostile `txn_id` is not mirrored in full.
const MAX_ECHO: usize = 64;

/// One protocol answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The request's `txn_id` as received (possibly invalid), echoed as `osmp_txn_id`.
    pub osmp_txn_id: Option<String>,
    /// Our transaction id, on `pay` answers.
    pub prv_txn: Option<i64>,
    /// The sum, on `pay` answers.
    pub sum: Option<Amount>,
    /// The result code.
    pub result: ResultCode,
    /// Short human text; never internal details.
    pub comment: &'static str,
}

impl Answer {
    /// An answer with just a result code and its comment.
    pub fn code(result: ResultCode, osmp_txn_id: Option<String>) -> Answer {
        Answer {
            osmp_txn_id,
            prv_txn: None,
            sum: None,
            result,
            comment: result.comment(),
        }
    }

    /// Renders the answer as a UTF-8 XML document.
    pub fn render(&self) -> String {
        let mut w = Writer::new(Vec::with_capacity(256));
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut w);
        String::from_utf8(w.into_inner()).unwrap_or_default()
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
        w.create_element("response").write_inner_content(|w| {
            let mut field = |name: &str, value: &str| -> std::io::Result<()> {
                w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
                w.create_element(name)
                    .write_text_content(BytesText::new(value))?;
                Ok(())
            };
            if let Some(id) = &self.osmp_txn_id {
                field("osmp_txn_id", &xml_safe(id))?;
            }
            if let Some(prv) = self.prv_txn {
                field("prv_txn", &prv.to_string())?;
            }
            if let Some(sum) = self.sum {
                field("sum", &sum.to_string())?;
            }
            field("result", &self.result.code().to_string())?;
            field("comment", self.comment)?;
            w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
            Ok(())
        })?;
        w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
        Ok(())
    }
}

/// Keeps the echo to characters that survive XML unchanged: control characters (which XML
/// 1.0 forbids, or rewrites, as it does `\r`) and non-characters become U+FFFD; bounded.
fn xml_safe(s: &str) -> String {
    s.chars()
        .take(MAX_ECHO)
        .map(|c| match c {
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use quick_xml::events::Event;

    /// Parses an answer strictly back into (element, text) pairs.
    fn parse_back(xml: &str) -> Vec<(String, String)> {
        let mut reader = quick_xml::Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut out: Vec<(String, String)> = Vec::new();
        let mut open: Option<String> = None;
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) => {
                    let name = e.name().as_ref().to_owned();
                    if name != "response" {
                        out.push((name.clone(), String::new()));
                        open = Some(name);
                    }
                }
                Event::End(_) => open = None,
                Event::Text(t) if open.is_some() => {
                    out.last_mut().unwrap().1.push_str(&t.xml10_content());
                }
                Event::GeneralRef(r) if open.is_some() => {
                    let c = match r.resolve_char_ref().unwrap() {
                        Some(c) => c,
                        None => match &*r.into_inner() {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "quot" => '"',
                            "apos" => '\'',
                            other => panic!("entity {other}"),
                        },
                    };
                    out.last_mut().unwrap().1.push(c);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    proptest! {
        #[test]
        fn every_answer_parses_back_with_the_same_values(
            echo in proptest::option::of(any::<String>()),
            prv in proptest::option::of(0i64..i64::MAX),
            minor in proptest::option::of(0i64..9_007_199_254_740_991),
            code in proptest::sample::select(vec![
                ResultCode::Ok, ResultCode::Temporary, ResultCode::BadAccount,
                ResultCode::AccountNotFound, ResultCode::Forbidden, ResultCode::SumTooSmall,
                ResultCode::SumTooLarge, ResultCode::Other,
            ]),
        ) {
            let a = Answer {
                osmp_txn_id: echo.clone(),
                prv_txn: prv,
                sum: minor.map(Amount::from_minor),
                result: code,
                comment: code.comment(),
            };
            let fields = parse_back(&a.render());
            let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            prop_assert_eq!(get("osmp_txn_id"), echo.map(|e| xml_safe(&e)));
            prop_assert_eq!(get("prv_txn"), prv.map(|p| p.to_string()));
            prop_assert_eq!(
                get("sum").map(|s| Amount::parse(&s).unwrap()),
                minor.map(Amount::from_minor)
            );
            prop_assert_eq!(get("result"), Some(code.code().to_string()));
            prop_assert_eq!(get("comment"), Some(code.comment().to_string()));
        }
    }

    #[test]
    fn renders_the_protocol_shape() {
        let a = Answer {
            osmp_txn_id: Some("1234567".into()),
            prv_txn: Some(2016),
            sum: Some(Amount::from_minor(1045)),
            result: ResultCode::Ok,
            comment: "OK",
        };
        assert_eq!(
            a.render(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>\n\
             <osmp_txn_id>1234567</osmp_txn_id>\n<prv_txn>2016</prv_txn>\n<sum>10.45</sum>\n\
             <result>0</result>\n<comment>OK</comment>\n</response>\n"
        );
    }

    #[test]
    fn escapes_and_cleans_hostile_echoes() {
        let a = Answer::code(
            ResultCode::Other,
            Some("<x>&\"'\u{1}\u{0}".to_string() + &"9".repeat(100)),
        );
        let xml = a.render();
        assert!(
            xml.contains("&lt;x&gt;&amp;&quot;&apos;\u{FFFD}\u{FFFD}"),
            "{xml}"
        );
        assert!(!xml.contains(&"9".repeat(MAX_ECHO)));
        assert!(xml.contains("<result>300</result>"));
    }
}
