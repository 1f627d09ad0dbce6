//! `qiwi-gateway simulate`: plays QIWI against any provider URL (this gateway behind its
//! proxy, or another implementation) and judges every answer against the protocol
//! (/work/shared/spec/qiwi-protocol.md: "Answer", "Result codes", "pay").
//!
//! Five exchanges, in order: `check`, `pay`, the same `pay` again, a `pay` that reuses the
//! `txn_id` with another sum, and a malformed `pay`; then the first `pay` once more, which must
//! still answer the same `prv_txn` (the conflict changed nothing). The `pay` is real: the
//! provider stores it and tells its backend, so use an account the backend knows is a test.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use quick_xml::events::Event;
use url::Url;

use crate::qiwi::Amount;

/// What to send and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The provider's `/payment` URL; user name and password in it become Basic auth.
    pub url: Url,
    /// The `account` of every request.
    pub account: String,
    /// The `sum` of the payment.
    pub sum: Amount,
    /// The `txn_id`; 1-20 digits.
    pub txn_id: String,
    /// The bound on each exchange, connection included.
    pub timeout: Duration,
}

/// One exchange and what the protocol says of its answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// What was tried, e.g. `pay (repeat)`.
    pub name: &'static str,
    /// The HTTP status, `None` when no answer came.
    pub status: Option<u16>,
    /// The answer's `result`, when it had one.
    pub result: Option<u16>,
    /// The answer's `prv_txn`, when it had one.
    pub prv_txn: Option<String>,
    /// Every way the answer departs from the protocol; empty when it follows it.
    pub deviations: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The URL as shown: the password replaced by `***`.
    pub shown_url: String,
    /// The exchanges, in order.
    pub steps: Vec<Step>,
}

impl Report {
    /// Whether every answer followed the protocol.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.deviations.is_empty())
    }

    /// The report as printed: one line per exchange, its deviations indented under it, and
    /// a closing verdict. Never contains the password.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "simulating QIWI against {}", self.shown_url);
        for s in &self.steps {
            let verdict = if s.deviations.is_empty() {
                "ok  "
            } else {
                "FAIL"
            };
            let status = s
                .status
                .map_or("no answer".to_owned(), |c| format!("HTTP {c}"));
            let result = s.result.map_or("-".to_owned(), |r| r.to_string());
            let prv = s.prv_txn.as_deref().unwrap_or("-");
            let _ = writeln!(
                out,
                "{verdict} {:<22} {status:<10} result {result:<4} prv_txn {prv}",
                s.name
            );
            for d in &s.deviations {
                let _ = writeln!(out, "       - {d}");
            }
        }
        let failed = self
            .steps
            .iter()
            .filter(|s| !s.deviations.is_empty())
            .count();
        if failed == 0 {
            let _ = writeln!(out, "all {} answers follow the protocol", self.steps.len());
        } else {
            let _ = writeln!(
                out,
                "{failed} of {} answers deviate from the protocol",
                self.steps.len()
            );
        }
        out
    }
}

/// Why the run could not start (an answer that deviates is a finding, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The URL is not http(s).
    #[error("the URL must start with http:// or https://")]
    Scheme,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The URL with its password replaced by `***`, as it may be printed.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// A `txn_id` no earlier run used: the current time in milliseconds (13-14 digits).
pub fn fresh_txn_id() -> String {
    chrono::Utc::now().timestamp_millis().to_string()
}

/// Runs the exchanges and judges them; the password is sent only as Basic auth.
pub async fn run(opts: &Options) -> Result<Report, SimulateError> {
    if !matches!(opts.url.scheme(), "http" | "https") {
        return Err(SimulateError::Scheme);
    }
    // The credentials leave the URL (and so every error message that quotes it).
    let mut target = opts.url.clone();
    let user = percent_decode(target.username());
    let pass = target.password().map(percent_decode);
    let _ = target.set_username("");
    let _ = target.set_password(None);
    let client = crate::outbound::client(opts.timeout)?;
    let send = |params: Vec<(&'static str, String)>| {
        let mut url = target.clone();
        url.query_pairs_mut().extend_pairs(&params);
        let mut req = client.get(url);
        if !user.is_empty() || pass.is_some() {
            req = req.basic_auth(&user, pass.as_deref());
        }
        req.send()
    };

    let txn = opts.txn_id.clone();
    let account = opts.account.clone();
    let sum = opts.sum.to_string();
    let other_sum = Amount::from_minor(opts.sum.minor() + 100).to_string();
    let txn_date = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let pay = |s: &str| {
        vec![
            ("command", "pay".to_owned()),
            ("txn_id", txn.clone()),
            ("account", account.clone()),
            ("sum", s.to_owned()),
            ("txn_date", txn_date.clone()),
        ]
    };

    let mut steps = Vec::new();

    let check = vec![
        ("command", "check".to_owned()),
        ("txn_id", txn.clone()),
        ("account", account.clone()),
        ("sum", sum.clone()),
    ];
    let a = Exchange::of(send(check).await).await;
    let mut s = a.judge("check", Some(&txn));
    if let Some(r) = a.result()
        && r != 0
    {
        s.deviations.push(format!(
            "check answered {r}, not 0: pick an account the provider accepts (--account)"
        ));
    }
    steps.push(s);

    let a = Exchange::of(send(pay(&sum)).await).await;
    let mut s = a.judge("pay", Some(&txn));
    a.expect_paid(&mut s, &sum);
    let first_prv = a.field("prv_txn").map(str::to_owned);
    steps.push(s);

    let a = Exchange::of(send(pay(&sum)).await).await;
    let mut s = a.judge("pay (repeat)", Some(&txn));
    a.expect_paid(&mut s, &sum);
    a.expect_same_prv(&mut s, first_prv.as_deref());
    steps.push(s);

    let a = Exchange::of(send(pay(&other_sum)).await).await;
    let mut s = a.judge("pay (conflicting sum)", Some(&txn));
    a.expect_result(&mut s, 300, "a txn_id reused with another sum");
    steps.push(s);

    let malformed = vec![
        ("command", "pay".to_owned()),
        ("txn_id", "not-a-number".to_owned()),
        ("account", account.clone()),
        ("sum", sum.clone()),
        ("txn_date", txn_date.clone()),
    ];
    let a = Exchange::of(send(malformed).await).await;
    let mut s = a.judge("pay (malformed txn_id)", None);
    a.expect_result(&mut s, 300, "a malformed request");
    steps.push(s);

    let a = Exchange::of(send(pay(&sum)).await).await;
    let mut s = a.judge("pay (after conflict)", Some(&txn));
    a.expect_paid(&mut s, &sum);
    a.expect_same_prv(&mut s, first_prv.as_deref());
    steps.push(s);

    Ok(Report {
        shown_url: shown_url(&opts.url),
        steps,
    })
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// One answer as received: status, content type and the XML's fields, or what went wrong.
struct Exchange {
    status: Option<u16>,
    content_type: Option<String>,
    /// The `<response>` children by name, or why the body is not a protocol answer.
    fields: Result<HashMap<String, String>, String>,
}

impl Exchange {
    async fn of(sent: reqwest::Result<reqwest::Response>) -> Exchange {
        match sent {
            Err(e) => Exchange {
                status: None,
                content_type: None,
                fields: Err(format!("no answer: {}", error_chain(&e))),
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let content_type = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let fields = match resp.bytes().await {
                    Err(e) => Err(format!("the body broke off: {}", error_chain(&e))),
                    Ok(body) => parse_answer(&body),
                };
                Exchange {
                    status: Some(status),
                    content_type,
                    fields,
                }
            }
        }
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.fields.as_ref().ok()?.get(name).map(String::as_str)
    }

    fn result(&self) -> Option<u16> {
        self.field("result")?.parse().ok()
    }

    /// What every protocol answer must be: HTTP 200, `text/xml; charset=utf-8`, a well-formed
    /// `<response>` with a numeric `result` and, for a valid `txn_id`, its echo.
    fn judge(&self, name: &'static str, txn: Option<&str>) -> Step {
        let mut deviations = Vec::new();
        match self.status {
            Some(200) | None => {}
            Some(c) => deviations.push(format!(
                "HTTP {c}: every protocol answer, errors included, is HTTP 200"
            )),
        }
        if self.status.is_some() && !content_type_ok(self.content_type.as_deref()) {
            deviations.push(format!(
                "Content-Type is {:?}, not text/xml; charset=utf-8",
                self.content_type.as_deref().unwrap_or("missing")
            ));
        }
        match &self.fields {
            Err(e) => deviations.push(e.clone()),
            Ok(f) => {
                match f.get("result") {
                    None => deviations.push("no <result>".to_owned()),
                    Some(r) if r.parse::<u16>().is_err() => {
                        deviations.push(format!("<result> {r:?} is not a number"))
                    }
                    Some(_) => {}
                }
                if let Some(txn) = txn
                    && f.get("osmp_txn_id").map(String::as_str) != Some(txn)
                {
                    deviations.push(format!(
                        "<osmp_txn_id> is {:?}, not the txn_id sent ({txn})",
                        f.get("osmp_txn_id")
                    ));
                }
            }
        }
        Step {
            name,
            status: self.status,
            result: self.result(),
            prv_txn: self.field("prv_txn").map(str::to_owned),
            deviations,
        }
    }

    fn expect_result(&self, step: &mut Step, want: u16, what: &str) {
        if let Some(r) = self.result()
            && r != want
        {
            step.deviations
                .push(format!("result {r}: {what} must answer {want}"));
        }
    }

    /// A successful `pay`: result 0, an integer `prv_txn`, the sum with two decimals.
    fn expect_paid(&self, step: &mut Step, sum: &str) {
        self.expect_result(step, 0, "a valid pay");
        if self.result() != Some(0) {
            return;
        }
        match self.field("prv_txn") {
            None => step.deviations.push("no <prv_txn> on a pay".to_owned()),
            Some(p) if p.parse::<i64>().is_err() => step
                .deviations
                .push(format!("<prv_txn> {p:?} is not an integer")),
            Some(_) => {}
        }
        match self.field("sum") {
            Some(s) if s == sum => {}
            other => step.deviations.push(format!(
                "<sum> is {other:?}, not the sum paid with two decimals ({sum})"
            )),
        }
    }

    fn expect_same_prv(&self, step: &mut Step, first: Option<&str>) {
        let now = self.field("prv_txn");
        if first.is_some() && now.is_some() && now != first {
            step.deviations.push(format!(
                "prv_txn changed from {} to {}: a repeated pay must answer the same prv_txn",
                first.unwrap_or_default(),
                now.unwrap_or_default()
            ));
        }
    }
}

/// `text/xml` with `charset=utf-8`, in any letter case and spacing.
fn content_type_ok(ct: Option<&str>) -> bool {
    let Some(ct) = ct else { return false };
    let mut parts = ct.split(';').map(|p| p.trim().to_ascii_lowercase());
    let mime_ok = parts.next().as_deref() == Some("text/xml");
    let charset_ok = parts.any(|p| {
        p.strip_prefix("charset=")
            .is_some_and(|c| c.trim_matches('"') == "utf-8")
    });
    mime_ok && charset_ok
}

/// Parses a protocol answer strictly: well-formed XML whose one root is `<response>`, its
/// children's text by element name (nested `<fields>` skipped).
fn parse_answer(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut fields = HashMap::new();
    let mut depth = 0usize;
    let mut roots = 0usize;
    let mut open: Option<String> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("the body is not well-formed XML: {e}"))?;
        match event {
            Event::Start(e) => {
                let name = e.name().as_ref().to_owned();
                if depth == 0 {
                    roots += 1;
                    if name != "response" {
                        return Err(format!("the root element is <{name}>, not <response>"));
                    }
                } else if depth == 1 {
                    fields.insert(name.clone(), String::new());
                    open = Some(name);
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 0 => {
                let name = e.name().as_ref().to_owned();
                return Err(format!("the root element is an empty <{name}/>"));
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth <= 1 {
                    open = None;
                }
            }
            Event::Text(t) if depth == 2 => {
                if let Some(name) = &open {
                    let piece = t.xml10_content();
                    fields.entry(name.clone()).or_default().push_str(&piece);
                }
            }
            Event::GeneralRef(r) if depth == 2 => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    _ => match &*r.into_inner() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return Err("the body uses an unknown XML entity".to_owned()),
                    },
                };
                if let Some(name) = &open {
                    fields.entry(name.clone()).or_default().push(c);
                }
            }
            Event::Text(t) if depth == 0 && !t.xml10_content().trim().is_empty() => {
                return Err("text outside the <response> element".to_owned());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if roots != 1 {
        return Err(format!("{roots} root elements, not one <response>"));
    }
    if depth != 0 {
        return Err("the body ends inside an element".to_owned());
    }
    Ok(fields)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let url = Url::parse("https://qiwi:s%40cret@pay.example.com/payment").unwrap();
        let shown = shown_url(&url);
        assert_eq!(shown, "https://qiwi:***@pay.example.com/payment");
        assert!(!shown.contains("cret"));
    }

    #[test]
    fn the_content_type_must_be_xml_in_utf8() {
        assert!(content_type_ok(Some("text/xml; charset=utf-8")));
        assert!(content_type_ok(Some("Text/XML;charset=\"UTF-8\"")));
        assert!(!content_type_ok(Some("text/xml")));
        assert!(!content_type_ok(Some("text/html; charset=utf-8")));
        assert!(!content_type_ok(Some(
            "application/xml; charset=windows-1251"
        )));
        assert!(!content_type_ok(None));
    }

    #[test]
    fn answers_are_parsed_strictly() {
        let ok = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>\n<osmp_txn_id>12</osmp_txn_id>\n<prv_txn>7</prv_txn>\n<sum>1.00</sum>\n<result>0</result>\n<comment>O&amp;K</comment>\n</response>\n";
        let f = parse_answer(ok.as_bytes()).unwrap();
        assert_eq!(f["prv_txn"], "7");
        assert_eq!(f["comment"], "O&K");
        for bad in [
            "<response><result>0</result>",
            "<response><result>0</res></response>",
            "<answer><result>0</result></answer>",
            "<response/>",
            "<response></response><response></response>",
            "result=0",
            "",
        ] {
            assert!(parse_answer(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
