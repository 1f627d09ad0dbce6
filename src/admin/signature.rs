//! The signature debugger on a transaction's page (issue 16.3): shows what an attempt signed
//! (`{webhook-id}.{webhook-timestamp}.{body}`) and its signature, and checks a signature,
//! timestamp and body the operator pastes from the backend's logs against it, saying exactly
//! what differs. The secret itself is never shown.
//!
//! The rules are Standard Webhooks' (<https://www.standardwebhooks.com>, "Verifying webhook
//! authenticity"): `webhook-signature` is a space-delimited list of `v1,<base64>` entries,
//! the HMAC-SHA256 of the signed content; receivers reject a `webhook-timestamp` more than
//! five minutes from their clock.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Extension, Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::session::Session;
use super::view::Fmt;
use super::{AdminError, Layout, Settings, not_found_page, render};
use crate::db::Db;
use crate::db::outbox::{self, AttemptRequest};
use crate::webhook;
use crate::webhook::signing::Signer;

/// Standard Webhooks' tolerance for `webhook-timestamp`, seconds.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The attempts the debugger offers.
const ATTEMPTS_OFFERED: usize = 50;

/// The value of header `name` in stored headers (`name: value` lines).
pub fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// One finding of the debugger: `ok` when that part agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether this part agrees.
    pub ok: bool,
    /// `signature-header`, `timestamp`, `window`, `body`, `secret`, `signature`, `unsigned`.
    pub kind: &'static str,
    /// What the operator reads.
    pub text: String,
}

fn finding(ok: bool, kind: &'static str, text: String) -> Finding {
    Finding { ok, kind, text }
}

/// What the operator pasted.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Pasted {
    /// The attempt chosen (its id).
    #[serde(default)]
    pub attempt: String,
    /// The `webhook-signature` header the backend received (or computed).
    #[serde(default)]
    pub signature: String,
    /// The `webhook-timestamp` header the backend received.
    #[serde(default)]
    pub timestamp: String,
    /// The body as the backend has it; empty: not pasted.
    #[serde(default)]
    pub body: String,
}

/// The signatures of a `webhook-signature` value: its `v1,<base64>` entries decoded (32 bytes
/// each), or why it is malformed. Entries of other versions are skipped, as the spec says.
pub fn parse_signatures(value: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let entries: Vec<&str> = value.split_whitespace().collect();
    if entries.is_empty() {
        return Err(
            "the signature is empty: paste the whole webhook-signature header value, \
                    e.g. v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
                .to_owned(),
        );
    }
    for (i, e) in entries.iter().enumerate() {
        let Some((version, sig)) = e.split_once(',') else {
            return Err(format!(
                "entry {} ({e:.20}) is not `<version>,<base64>`: the header is a space-separated \
                 list of entries such as v1,<base64>",
                i + 1
            ));
        };
        if version != "v1" {
            continue;
        }
        let Ok(bytes) = STANDARD.decode(sig) else {
            return Err(format!(
                "entry {} is not standard base64 after `v1,` (the alphabet A-Z a-z 0-9 + /, \
                 padded with =; URL-safe base64 or hex is a different encoding)",
                i + 1
            ));
        };
        if bytes.len() != 32 {
            return Err(format!(
                "entry {} decodes to {} bytes; an HMAC-SHA256 signature has 32",
                i + 1,
                bytes.len()
            ));
        }
        out.push(bytes);
    }
    if out.is_empty() {
        return Err("no `v1,` entry: this gateway signs with v1 (HMAC-SHA256) only".to_owned());
    }
    Ok(out)
}

/// The first byte offset where `a` and `b` differ (`None`: equal).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

fn byte_at(b: &[u8], i: usize) -> String {
    b.get(i).map_or_else(
        || "end of body".to_owned(),
        |x| format!("0x{x:02x} {:?}", char::from(*x)),
    )
}

/// Compares what the operator pasted with attempt `req`, signed with `signer` (the configured
/// secret; `None`: unsigned), at `now` (Unix seconds). Returns one finding per part.
pub fn diagnose(
    req: &AttemptRequest,
    signer: Option<&Signer>,
    pasted: &Pasted,
    now: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(signer) = signer else {
        out.push(finding(
            false,
            "unsigned",
            "No webhook_secret is configured: requests carry no webhook-signature, there is \
             nothing to verify. Set QIWI_WEBHOOK_SECRET (the same whsec_… value on both sides)."
                .to_owned(),
        ));
        return out;
    };
    let id = header(&req.headers, "webhook-id").unwrap_or_default();
    let our_ts: Option<i64> =
        header(&req.headers, "webhook-timestamp").and_then(|t| t.parse().ok());
    let body_ours = req.body.as_bytes();

    // The timestamp.
    let ts_text = pasted.timestamp.trim();
    let ts = if ts_text.is_empty() {
        our_ts
    } else {
        match ts_text.parse::<i64>() {
            Ok(t) => {
                match our_ts {
                    Some(o) if o == t => out.push(finding(
                        true,
                        "timestamp",
                        format!("The timestamp {t} is this attempt's."),
                    )),
                    Some(o) => out.push(finding(
                        false,
                        "timestamp",
                        format!(
                            "The timestamp differs: you pasted {t}, this attempt was signed at \
                             {o} ({} s apart). It belongs to another attempt (each attempt \
                             signs its own time), or the backend reads the wrong header.",
                            (t - o).abs()
                        ),
                    )),
                    None => {}
                }
                Some(t)
            }
            Err(_) => {
                out.push(finding(
                    false,
                    "timestamp",
                    format!(
                        "The timestamp {ts_text:.40} is not whole Unix seconds (e.g. {}): \
                         webhook-timestamp is an integer.",
                        our_ts.unwrap_or(now)
                    ),
                ));
                our_ts
            }
        }
    };
    if let Some(t) = ts {
        let age = now - t;
        out.push(if age.abs() <= TOLERANCE_SECS {
            finding(
                true,
                "window",
                format!("The timestamp is {age} s from now: within the 5-minute tolerance."),
            )
        } else {
            finding(
                false,
                "window",
                format!(
                    "The timestamp is {age} s from now, outside Standard Webhooks' 5-minute \
                     tolerance: a receiver checking it rejects the request as a replay. A \
                     resend signs a fresh timestamp; also check the backend's clock."
                ),
            )
        });
    }

    // The body.
    let body =
        if pasted.body.is_empty() {
            body_ours
        } else {
            let theirs = pasted.body.as_bytes();
            match first_difference(body_ours, theirs) {
            None => out.push(finding(
                true,
                "body",
                format!("The body is byte for byte what was sent ({} bytes).", theirs.len()),
            )),
            Some(i) => out.push(finding(
                false,
                "body",
                format!(
                    "The body differs from what was sent at byte offset {i}: ours has {}, yours \
                     has {} ({} bytes sent, {} pasted). Verify the raw request bytes, before any \
                     JSON parsing or re-serialising (a browser form may also turn line breaks \
                     into CR LF).",
                    byte_at(body_ours, i),
                    byte_at(theirs, i),
                    body_ours.len(),
                    theirs.len()
                ),
            )),
        }
            theirs
        };

    // The signature.
    let sig_text = pasted.signature.trim();
    if sig_text.is_empty() {
        return out;
    }
    let sigs = match parse_signatures(sig_text) {
        Ok(s) => s,
        Err(why) => {
            out.push(finding(
                false,
                "signature-header",
                format!("The signature header is malformed: {why}."),
            ));
            return out;
        }
    };
    let decoded = |v: String| {
        STANDARD
            .decode(v.trim_start_matches("v1,"))
            .unwrap_or_default()
    };
    let matches_content = |t: i64, b: &[u8]| {
        let ours = decoded(signer.sign(id, t, b));
        sigs.contains(&ours)
    };
    match ts {
        Some(t) if matches_content(t, body) => out.push(finding(
            true,
            "signature",
            format!(
                "The signature is valid with our secret for {id}.{t}.<body> ({} bytes): a \
                 receiver with the same secret accepts it.",
                body.len()
            ),
        )),
        Some(t) => {
            // Which content, if any, does it sign with our secret?
            let ours_ok = our_ts.is_some_and(|o| matches_content(o, body_ours));
            if ours_ok {
                out.push(finding(
                    false,
                    "signature",
                    "The signature is ours for what we sent, but not for the timestamp or body \
                     you pasted: the backend verifies other content (see above)."
                        .to_owned(),
                ));
            } else if Some(t) == our_ts && body == body_ours {
                out.push(finding(
                    false,
                    "secret",
                    format!(
                        "The secret differs: the signed content is ours ({id}.{t}.<body>, {} \
                         bytes), but the signature was not made with our secret. Check that the \
                         backend uses the same QIWI_WEBHOOK_SECRET, whole, with the whsec_ \
                         prefix removed and the rest base64-decoded to the key bytes.",
                        body.len()
                    ),
                ));
            } else {
                out.push(finding(
                    false,
                    "signature",
                    "The signature matches neither the content you pasted nor what we sent, \
                     with our secret: the content differs (see above) and maybe the secret too."
                        .to_owned(),
                ));
            }
        }
        None => out.push(finding(
            false,
            "signature",
            "No timestamp to check the signature with.".to_owned(),
        )),
    }
    out
}

/// One attempt in the debugger's choice list.
struct Choice {
    id: i64,
    label: String,
    selected: bool,
}

/// The debugger page.
#[derive(Template)]
#[template(path = "signature.html")]
pub struct SignaturePage {
    layout: Layout,
    txn_id: i64,
    code: String,
    action: String,
    choices: Vec<Choice>,
    /// The chosen attempt's parts, when it has its request stored.
    msg_id: String,
    timestamp: String,
    signed: String,
    signature: String,
    /// Whether the stored signature is what the current secret gives (else it changed since).
    secret_changed: bool,
    signed_configured: bool,
    pasted: Pasted,
    findings: Vec<Finding>,
    verified: bool,
}

/// `GET /admin/transactions/{id}/signature`: the debugger for the newest attempt.
pub async fn get(
    db: State<Db>,
    settings: State<Arc<Settings>>,
    webhook: State<Arc<webhook::Settings>>,
    session: Extension<Session>,
    id: Path<String>,
) -> Result<Response, AdminError> {
    show((db, settings, webhook), session, id, None).await
}

/// `POST /admin/transactions/{id}/signature`: checks what was pasted.
pub async fn post(
    db: State<Db>,
    settings: State<Arc<Settings>>,
    webhook: State<Arc<webhook::Settings>>,
    session: Extension<Session>,
    id: Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let pasted = Pasted {
        attempt: get("attempt"),
        signature: get("signature"),
        timestamp: get("timestamp"),
        // A textarea sends line breaks as CR LF (HTML's form submission); the body is JSON
        // without line breaks, so nothing is changed here: the debugger shows what came.
        body: get("body"),
    };
    show((db, settings, webhook), session, id, Some(pasted)).await
}

async fn show(
    (State(db), State(settings), State(webhook)): (
        State<Db>,
        State<Arc<Settings>>,
        State<Arc<webhook::Settings>>,
    ),
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    pasted: Option<Pasted>,
) -> Result<Response, AdminError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(not_found_page(&session));
    };
    let found = db
        .read_bulk(move |c| {
            let Some(t) = crate::db::transactions::transaction(c, id)? else {
                return Ok(None);
            };
            Ok(Some((t, outbox::attempts(c, id, ATTEMPTS_OFFERED)?)))
        })
        .await?;
    let Some((t, attempts)) = found else {
        return Ok(not_found_page(&session));
    };
    let zone = Fmt::new(&settings);
    let with_request: Vec<_> = attempts
        .into_iter()
        .filter(|a| a.request.is_some())
        .collect();
    let verified = pasted.is_some();
    let pasted = pasted.unwrap_or_default();
    let chosen_id = pasted.attempt.trim().parse::<i64>().ok();
    let chosen = with_request
        .iter()
        .find(|a| Some(a.id) == chosen_id)
        .or(with_request.first());
    let signer = webhook.secret.as_ref().and_then(|s| Signer::new(&s.0).ok());
    let (mut msg_id, mut timestamp, mut signed, mut signature) =
        (String::new(), String::new(), String::new(), String::new());
    let mut secret_changed = false;
    let mut findings = Vec::new();
    if let Some(req) = chosen.and_then(|a| a.request.as_ref()) {
        msg_id = header(&req.headers, "webhook-id")
            .unwrap_or_default()
            .to_owned();
        timestamp = header(&req.headers, "webhook-timestamp")
            .unwrap_or_default()
            .to_owned();
        signature = header(&req.headers, "webhook-signature")
            .unwrap_or_default()
            .to_owned();
        signed = format!("{msg_id}.{timestamp}.{}", req.body);
        if let (Some(s), Ok(ts)) = (&signer, timestamp.parse::<i64>()) {
            secret_changed =
                !signature.is_empty() && s.sign(&msg_id, ts, req.body.as_bytes()) != signature;
        }
        if verified {
            findings = diagnose(
                req,
                signer.as_ref(),
                &pasted,
                chrono::Utc::now().timestamp(),
            );
        }
    }
    let choices = with_request
        .iter()
        .map(|a| Choice {
            id: a.id,
            label: format!(
                "{} {} · {}",
                zone.time(&a.created_at),
                zone.zone(),
                a.http_status
                    .map_or_else(|| "no answer".to_owned(), |s| s.to_string())
            ),
            selected: chosen.is_some_and(|c| c.id == a.id),
        })
        .collect();
    let page = SignaturePage {
        layout: Layout::new(
            format!("Signature debugger · {}", t.row.code),
            &session,
            "transactions",
            &zone,
        ),
        txn_id: t.row.id,
        action: format!("/admin/transactions/{}/signature", t.row.id),
        code: t.row.code,
        choices,
        msg_id,
        timestamp,
        signed,
        signature,
        secret_changed,
        signed_configured: signer.is_some(),
        pasted,
        findings,
        verified,
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn sent(signer: &Signer, ts: i64) -> AttemptRequest {
        let body = r#"{"code":"900","sum":3.21}"#;
        AttemptRequest {
            url: "http://127.0.0.1:1/hook?token=***".into(),
            headers: format!(
                "content-type: application/json\nwebhook-id: msg_900\nwebhook-timestamp: {ts}\n\
                 webhook-signature: {}\n",
                signer.sign("msg_900", ts, body.as_bytes())
            ),
            body: body.into(),
        }
    }

    fn kinds(f: &[Finding]) -> Vec<(&'static str, bool)> {
        f.iter().map(|f| (f.kind, f.ok)).collect()
    }

    #[test]
    fn each_kind_of_difference_gets_its_own_verdict() {
        let ours = Signer::new(SECRET).unwrap();
        let other = Signer::new("whsec_b3RoZXIgc2VjcmV0").unwrap();
        let now = 1_700_000_000;
        let req = sent(&ours, now - 10);
        let sig = header(&req.headers, "webhook-signature")
            .unwrap()
            .to_owned();
        let paste = |signature: &str, timestamp: &str, body: &str| Pasted {
            attempt: String::new(),
            signature: signature.into(),
            timestamp: timestamp.into(),
            body: body.into(),
        };
        let ts = (now - 10).to_string();

        // All agree.
        let f = diagnose(&req, Some(&ours), &paste(&sig, &ts, &req.body), now);
        assert_eq!(
            kinds(&f),
            [
                ("timestamp", true),
                ("window", true),
                ("body", true),
                ("signature", true)
            ]
        );
        // Another secret, our content.
        let theirs = other.sign("msg_900", now - 10, req.body.as_bytes());
        let f = diagnose(&req, Some(&ours), &paste(&theirs, &ts, ""), now);
        assert_eq!(kinds(&f).last(), Some(&("secret", false)), "{f:?}");
        assert!(
            !f.iter().any(|x| x.text.contains("MfKQ9r8")),
            "the secret never shows"
        );
        // Body bytes: a re-serialised body differs at the first space.
        let f = diagnose(
            &req,
            Some(&ours),
            &paste(&sig, &ts, r#"{"code": "900","sum":3.21}"#),
            now,
        );
        let body = f.iter().find(|x| x.kind == "body").unwrap();
        assert!(!body.ok);
        assert!(body.text.contains("byte offset 8"), "{}", body.text);
        assert_eq!(kinds(&f).last(), Some(&("signature", false)));
        // Timestamp outside the window (an old attempt checked now), still our signature.
        let f = diagnose(&req, Some(&ours), &paste(&sig, &ts, ""), now + 3600);
        assert!(f.contains(&Finding {
            ok: false,
            kind: "window",
            text: f.iter().find(|x| x.kind == "window").unwrap().text.clone()
        }));
        assert_eq!(kinds(&f).last(), Some(&("signature", true)));
        // Another attempt's timestamp.
        let f = diagnose(
            &req,
            Some(&ours),
            &paste(&sig, &(now - 500).to_string(), ""),
            now,
        );
        assert_eq!(kinds(&f)[0], ("timestamp", false));
        assert_eq!(kinds(&f).last(), Some(&("signature", false)));
        // Malformed headers.
        for bad in [
            "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN",
            "v1,@@@",
            "v1,AAAA",
            "v2,AAAA",
        ] {
            let f = diagnose(&req, Some(&ours), &paste(bad, &ts, ""), now);
            assert_eq!(
                kinds(&f).last(),
                Some(&("signature-header", false)),
                "{bad}: {f:?}"
            );
        }
        // A list with one valid entry among others is valid.
        let list = format!("v1,{} {sig}", STANDARD.encode([0u8; 32]));
        let f = diagnose(&req, Some(&ours), &paste(&list, &ts, ""), now);
        assert_eq!(kinds(&f).last(), Some(&("signature", true)));
        // Unsigned.
        let f = diagnose(&req, None, &paste(&sig, &ts, ""), now);
        assert_eq!(kinds(&f), [("unsigned", false)]);
    }

    #[test]
    fn the_first_difference_is_found() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"abc", b"ab"), Some(2));
        assert_eq!(first_difference(b"", b"x"), Some(0));
    }
}
