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

/// Keeps only characters XML 1.0 allows (escaping cannot make a control byte legal), bounded.
fn xml_safe(s: &str) -> String {
    s.chars()
        .take(MAX_ECHO)
        .map(|c| match c {
            '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' => c,
            c if c >= '\u{10000}' => c,
            _ => '\u{FFFD}',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
