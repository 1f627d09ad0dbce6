//! The XML answer QIWI reads.

use std::borrow::Cow;

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
    /// Short human text; never internal details (a check backend's own comment is bounded
    /// and cleaned before it gets here).
    pub comment: Cow<'static, str>,
    /// Display fields for the terminal (check and getInfo), in order, already bounded and
    /// cleaned: rendered as `<fields><field1 name="disp1">...</field1>...</fields>`.
    pub fields: Vec<Field>,
}

/// One display field: a name (`[A-Za-z0-9_]{1,32}`) and its text (at most 255 characters,
/// no control characters), as the check backend gave them (issue 11 point 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name, its `name` attribute.
    pub name: String,
    /// The text shown to the payer.
    pub value: String,
}

impl Answer {
    /// An answer with just a result code and its comment.
    pub fn code(result: ResultCode, osmp_txn_id: Option<String>) -> Answer {
        Answer {
            osmp_txn_id,
            prv_txn: None,
            sum: None,
            result,
            comment: Cow::Borrowed(result.comment()),
            fields: Vec::new(),
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
            if !self.fields.is_empty() {
                w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
                w.create_element("fields").write_inner_content(|w| {
                    for (i, f) in self.fields.iter().enumerate() {
                        w.create_element(format!("field{}", i + 1))
                            .with_attribute(("name", xml_clean(&f.name, MAX_ECHO).as_str()))
                            .write_text_content(BytesText::new(&xml_clean(&f.value, 1024)))?;
                    }
                    Ok(())
                })?;
            }
            w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
            w.create_element("comment")
                .write_text_content(BytesText::new(&xml_clean(&self.comment, 1024)))?;
            w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
            Ok(())
        })?;
        w.write_event(Event::Text(BytesText::from_escaped("\n")))?;
        Ok(())
    }
}

/// An answer read back from its XML: each element's text and the display fields, in order.
/// Used to show a logged answer's fields on the admin pages, and by the round-trip tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBack {
    /// `(element, text)` of each top-level element but `fields`, in order.
    pub elements: Vec<(String, String)>,
    /// The `fieldN` elements of `fields`, in order.
    pub fields: Vec<Field>,
}

impl ReadBack {
    /// The text of element `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.elements
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads an answer's XML strictly (end names checked, entities resolved). `None` when it is
/// not well-formed or not a `<response>`; at most `MAX_READ_FIELDS` fields are kept.
pub fn read(xml: &str) -> Option<ReadBack> {
    const MAX_READ_FIELDS: usize = 64;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut out = ReadBack::default();
    // The open elements' names, the root first.
    let mut path: Vec<String> = Vec::new();
    loop {
        let event = reader.read_event().ok()?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name: String = e.name().as_ref().to_owned();
                match path.len() {
                    0 if name != "response" => return None,
                    1 if name != "fields" => out.elements.push((name.clone(), String::new())),
                    2 if path[1] == "fields" && out.fields.len() < MAX_READ_FIELDS => {
                        let mut field = Field {
                            name: String::new(),
                            value: String::new(),
                        };
                        for attr in e.attributes() {
                            let attr = attr.ok()?;
                            if attr.key.as_ref() == "name" {
                                field.name = attr
                                    .normalized_value(quick_xml::XmlVersion::default())
                                    .ok()?
                                    .into_owned();
                            }
                        }
                        out.fields.push(field);
                    }
                    _ => {}
                }
                if matches!(event, Event::Start(_)) {
                    path.push(name);
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                push_text(&mut out, &path, &text);
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().ok()? {
                    Some(c) => c,
                    None => match &*r.into_inner() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return None,
                    },
                };
                push_text(&mut out, &path, c.encode_utf8(&mut [0; 4]));
            }
            Event::CData(c) => {
                let text = c.into_inner();
                push_text(&mut out, &path, &text);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (path.is_empty() && !out.elements.is_empty()).then_some(out)
}

fn push_text(out: &mut ReadBack, path: &[String], text: &str) {
    match path.len() {
        2 => {
            if let Some((_, v)) = out.elements.last_mut() {
                v.push_str(text);
            }
        }
        3 if path[1] == "fields" => {
            if let Some(f) = out.fields.last_mut() {
                f.value.push_str(text);
            }
        }
        _ => {}
    }
}

/// Keeps the echo to characters that survive XML unchanged: control characters (which XML
/// 1.0 forbids, or rewrites, as it does `\r`) and non-characters become U+FFFD; bounded.
fn xml_safe(s: &str) -> String {
    s.chars()
        .take(MAX_ECHO)
        .map(|c| match c {
            c if unsafe_in_xml(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Whether `c` cannot travel through XML 1.0 unchanged (controls, which it forbids or
/// rewrites, and the non-characters U+FFFE/U+FFFF).
pub fn unsafe_in_xml(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Text with every character [`unsafe_in_xml`] removed, at most `max` characters: the last
/// guard of every field and comment, whoever built them.
fn xml_clean(s: &str, max: usize) -> String {
    s.chars().filter(|&c| !unsafe_in_xml(c)).take(max).collect()
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
                comment: code.comment().into(),
                fields: Vec::new(),
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
            comment: "OK".into(),
            fields: Vec::new(),
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

    #[test]
    fn renders_display_fields_in_order_escaped() {
        let a = Answer {
            fields: vec![
                Field {
                    name: "disp1".into(),
                    value: "Ivanov I.I.".into(),
                },
                Field {
                    name: "disp2".into(),
                    value: "<b>&\"'\u{1}-120.00".into(),
                },
            ],
            ..Answer::code(ResultCode::Ok, None)
        };
        let xml = a.render();
        assert!(
            xml.contains(
                "<fields><field1 name=\"disp1\">Ivanov I.I.</field1>\
                 <field2 name=\"disp2\">&lt;b&gt;&amp;&quot;&apos;-120.00</field2></fields>"
            ),
            "{xml}"
        );
        assert!(!xml.contains("osmp_txn_id"));
        let back = parse_back(&xml);
        assert!(back.contains(&("field2".into(), "<b>&\"'-120.00".into())));
    }
}
