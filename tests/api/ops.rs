//! Operations: access control on `/payment`, health, readiness, metrics, housekeeping, TLS.

use crate::helpers::*;

fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

impl TestApp {
    /// A `pay` by GET carrying `X-Forwarded-For` values.
    async fn pay_forwarded(&self, txn_id: &str, xff: &str) -> reqwest::Response {
        self.client
            .get(format!(
                "{}/payment?command=pay&txn_id={txn_id}&account=acc&sum=1.00&txn_date=20240101120000",
                self.base
            ))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap()
    }

    /// The last request log row: (ip, status).
    fn last_log(&self) -> (String, i64) {
        self.db()
            .query_row(
                "SELECT ip, status FROM qiwi_http_log ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }
}

#[tokio::test]
async fn an_address_outside_the_allow_list_gets_403_and_is_logged() {
    let app = spawn_app_with(|c| c.qiwi_allowed_ips = nets(&["79.142.16.0/20"])).await;
    let resp = app.pay_forwarded("1", "79.142.16.5").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 403));
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
}

#[tokio::test]
async fn an_address_inside_the_allow_list_is_served() {
    let app = spawn_app_with(|c| c.qiwi_allowed_ips = nets(&["10.0.0.0/8", "127.0.0.0/8"])).await;
    assert_eq!(app.pay("1", "acc", "1.00").await.result(), 0);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 200));
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // The peer (127.0.0.1) is no trusted proxy: its X-Forwarded-For claiming a QIWI address
    // must not let it in, and the log names the peer.
    let app = spawn_app_with(|c| {
        c.qiwi_allowed_ips = nets(&["79.142.16.0/20"]);
        c.trusted_proxies = nets(&["10.0.0.0/8"]);
    })
    .await;
    let resp = app.pay_forwarded("1", "79.142.16.5").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 403));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_checked_and_logged() {
    let app = spawn_app_with(|c| {
        c.qiwi_allowed_ips = nets(&["79.142.16.0/20"]);
        c.trusted_proxies = nets(&["127.0.0.1/32"]);
    })
    .await;
    let resp = app.pay_forwarded("1", "79.142.16.5").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.last_log(), ("79.142.16.5".to_owned(), 200));
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);

    // A client that writes a QIWI address first: the proxy appends the real one, which wins.
    let resp = app.pay_forwarded("2", "79.142.16.5, 203.0.113.9").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(app.last_log(), ("203.0.113.9".to_owned(), 403));
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

#[tokio::test]
async fn without_an_allow_list_everyone_is_served_and_the_peer_is_logged() {
    let app = spawn_app().await;
    let resp = app.pay_forwarded("1", "79.142.16.5").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 200));
}
