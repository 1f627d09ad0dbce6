//! The account check against the merchant's backend (`QIWI_CHECK_URL`).

use std::time::Duration;

use url::Url;

/// What the merchant's backend said about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 200: the account exists (result 0).
    Valid,
    /// Another non-5xx status: no such account (result 5).
    NotFound,
    /// 5xx, timeout or no connection: ask QIWI to retry (result 1).
    Unavailable,
}

/// Calls the check backend with its own timeout; never follows redirects.
#[derive(Debug, Clone)]
pub struct Checker {
    client: reqwest::Client,
    url: Url,
}

impl Checker {
    /// A checker for `url` whose calls give up after `timeout`.
    pub fn new(url: Url, timeout: Duration) -> Result<Checker, reqwest::Error> {
        let client = crate::http::outbound_client(timeout)?;
        Ok(Checker { client, url })
    }

    /// `GET {url}?account={account}` (appended to any query the URL already has).
    pub async fn check(&self, account: &str) -> Verdict {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("account", account);
        match self.client.get(url).send().await {
            Ok(resp) => {
                let status = resp.status();
                if status == reqwest::StatusCode::OK {
                    Verdict::Valid
                } else if status.is_server_error() {
                    tracing::warn!(%status, "check backend failed");
                    Verdict::Unavailable
                } else {
                    Verdict::NotFound
                }
            }
            Err(e) => {
                let timeout = e.is_timeout();
                // The URL may carry credentials: keep it out of the log.
                let e = e.without_url();
                tracing::warn!(error = %e, timeout, "check backend unreachable");
                Verdict::Unavailable
            }
        }
    }
}
