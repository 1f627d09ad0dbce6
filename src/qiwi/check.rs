//! The account check against the merchant's backend (`QIWI_CHECK_URL`): the call. Reading
//! its answer is [`super::backend::judge`] (pure).

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::ops::Metrics;

pub use super::backend::Verdict;
use super::backend::{MAX_BODY, judge};

/// The account check's section of the configuration (`qiwi_check_url`, `check_timeout_secs`).
/// Its `Debug` hides the URL's credentials and query values.
#[derive(Clone)]
pub struct Settings {
    /// The merchant's account check endpoint; `None`: no check.
    pub url: Option<Url>,
    /// Timeout of one call to `url`.
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("url", &self.url.as_ref().map(crate::ops::redact::url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Calls the check backend with its own timeout; never follows redirects.
#[derive(Debug, Clone)]
pub struct Checker {
    client: reqwest::Client,
    // Shared: the checker is cloned with the `/payment` state on every request.
    url: Arc<Url>,
}

impl Checker {
    /// A checker for `url` whose calls give up after `timeout`.
    pub fn new(url: Url, timeout: Duration) -> Result<Checker, reqwest::Error> {
        let client = crate::outbound::client(timeout)?;
        Ok(Checker {
            client,
            url: Arc::new(url),
        })
    }

    /// `GET {url}?account={account}` (appended to any query the URL already has); the body
    /// read is bounded by [`MAX_BODY`] and the whole call by the timeout. Every call is
    /// counted in `metrics` by the status answered (`qiwi_check_backend_answers_total`).
    pub async fn check(&self, account: &str, metrics: &Metrics) -> Verdict {
        let mut url = Url::clone(&self.url);
        url.query_pairs_mut().append_pair("account", account);
        let mut resp = match self.client.get(url).send().await {
            Ok(resp) => resp,
            Err(e) => {
                let timeout = e.is_timeout();
                // The URL may carry credentials: keep it out of the log.
                let e = e.without_url();
                tracing::warn!(error = %e, timeout, "check backend unreachable");
                metrics.check_backend_answer(None);
                return Verdict::Unavailable;
            }
        };
        let status = resp.status().as_u16();
        metrics.check_backend_answer(Some(status));
        if resp.status().is_redirection() {
            // Not followed (the outbound policy): a misplaced URL, said with where it points.
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| redacted_location(&self.url, &String::from_utf8_lossy(v.as_bytes())));
            tracing::warn!(
                status,
                location = location.as_deref().unwrap_or("(none)"),
                "check backend answered a redirect, which is not followed: answering 5, \
                 account not found (set QIWI_CHECK_URL to where it points)"
            );
        }
        if status != 200 {
            return judge(status, None, b"");
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = (MAX_BODY + 1).saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() > MAX_BODY {
                        tracing::warn!(limit = MAX_BODY, "check backend answer too long: cut");
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let e = e.without_url();
                    tracing::warn!(error = %e, "check backend answer broke off");
                    return Verdict::Unavailable;
                }
            }
        }
        judge(status, content_type.as_deref(), &body)
    }
}

/// A redirect's `Location`, resolved against the check URL and masked like every configured
/// URL ([`crate::ops::redact::url`]: no user info, query values or fragment); text that is
/// no URL is masked as [`crate::ops::redact::text`] does, and bounded.
fn redacted_location(base: &Url, location: &str) -> String {
    match base.join(location) {
        Ok(u) => crate::ops::redact::url(&u),
        Err(_) => crate::ops::redact::text(location)
            .chars()
            .take(200)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_resolved_and_masked() {
        let base: Url = "https://u:p@shop.example/check?key=s3cret".parse().unwrap();
        assert_eq!(
            redacted_location(&base, "/v2/check?token=abc#x"),
            "https://***:***@shop.example/v2/check?token=***#***"
        );
        assert_eq!(
            redacted_location(&base, "http://other.example/c?account=1"),
            "http://other.example/c?account=***"
        );
    }
}
