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
    let app = spawn_app_with(|c| c.qiwi.allowed_ips = nets(&["79.142.16.0/20"])).await;
    let resp = app.pay_forwarded("1", "79.142.16.5").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 403));
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
}

#[tokio::test]
async fn an_address_inside_the_allow_list_is_served() {
    let app = spawn_app_with(|c| c.qiwi.allowed_ips = nets(&["10.0.0.0/8", "127.0.0.0/8"])).await;
    assert_eq!(app.pay("1", "acc", "1.00").await.result(), 0);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 200));
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    // The peer (127.0.0.1) is no trusted proxy: its X-Forwarded-For claiming a QIWI address
    // must not let it in, and the log names the peer.
    let app = spawn_app_with(|c| {
        c.qiwi.allowed_ips = nets(&["79.142.16.0/20"]);
        c.server.trusted_proxies = nets(&["10.0.0.0/8"]);
    })
    .await;
    let resp = app.pay_forwarded("1", "79.142.16.5").await;
    assert_eq!(resp.status(), 403);
    assert_eq!(app.last_log(), ("127.0.0.1".to_owned(), 403));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_checked_and_logged() {
    let app = spawn_app_with(|c| {
        c.qiwi.allowed_ips = nets(&["79.142.16.0/20"]);
        c.server.trusted_proxies = nets(&["127.0.0.1/32"]);
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

impl TestApp {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// A read-write connection, for tests that tamper with the database.
    fn db_rw(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.db_path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c
    }
}

/// The value of one sample line (`name{labels} value`) in a metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let resp = app.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok\n");
}

#[tokio::test]
async fn readyz_is_ok_while_the_database_takes_writes() {
    let app = spawn_app().await;
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().starts_with("database: ok"));
}

#[tokio::test]
async fn readyz_fails_while_the_database_cannot_be_written_and_recovers() {
    let app = spawn_app_with(|c| {
        c.ops.timings.readiness_deadline = std::time::Duration::from_millis(300);
    })
    .await;
    // Another process holding SQLite's write lock (a stuck shell, a copy tool): the gateway
    // cannot commit anything, so it must not be sent payments.
    let locker = app.db_rw();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("database: no write committed within 300 ms"),
        "{text}"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    // The writer gets the lock back after its busy timeout at most.
    let mut status = 0;
    for _ in 0..80 {
        status = app.get("/readyz").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn readyz_fails_when_the_oldest_undelivered_webhook_is_too_old() {
    let app = spawn_app_with(|c| {
        c.ops.readiness_max_backlog_age = Some(std::time::Duration::from_secs(3600));
    })
    .await;
    assert_eq!(app.pay("1", "acc", "1.00").await.result(), 0);
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    app.db_rw()
        .execute(
            "UPDATE qiwi_transaction SET created_at = datetime('now', '-2 hours')",
            [],
        )
        .unwrap();
    let resp = app.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(text.contains("webhook backlog: 1 pending"), "{text}");
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let app = spawn_app_with(|c| {
        c.qiwi.allowed_ips = nets(&["127.0.0.0/8"]);
        c.server.trusted_proxies = nets(&["127.0.0.1/32"]);
    })
    .await;
    assert_eq!(app.pay("1", "acc", "10.45").await.result(), 0);
    assert_eq!(app.pay("2", "acc", "5").await.result(), 0);
    assert_eq!(app.pay("2", "acc", "5").await.result(), 0); // a repeat: no new payment
    assert_eq!(app.pay("2", "acc", "6").await.result(), 300); // conflict
    assert_eq!(app.check("3", "acc", "1").await.result(), 0);
    assert_eq!(app.query("command=refund&txn_id=4").await.result(), 300);
    assert_eq!(app.pay_forwarded("5", "203.0.113.9").await.status(), 403);

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    let s = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in {text}"));
    assert_eq!(s(r#"qiwi_requests_total{command="pay",result="0"}"#), 3.0);
    assert_eq!(s(r#"qiwi_requests_total{command="pay",result="300"}"#), 1.0);
    assert_eq!(s(r#"qiwi_requests_total{command="check",result="0"}"#), 1.0);
    assert_eq!(
        s(r#"qiwi_requests_total{command="other",result="300"}"#),
        1.0
    );
    assert_eq!(
        s(r#"qiwi_requests_total{command="none",result="http_403"}"#),
        1.0
    );
    assert_eq!(s("qiwi_payments_total"), 2.0);
    assert_eq!(s("qiwi_payments_amount_kopecks_total"), 1545.0);
    assert_eq!(s("qiwi_webhook_backlog"), 2.0);
    assert!(s("qiwi_webhook_backlog_oldest_age_seconds") >= 0.0);
    // every pay and every log row went through the writer
    assert!(s("qiwi_db_write_duration_seconds_count") >= 7.0);
}

#[tokio::test]
async fn metrics_token_guards_the_metrics() {
    let app = spawn_app_with(|c| {
        c.ops.metrics_token = Some(qiwi_gateway::config::Secret("s3cret-token".into()));
    })
    .await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"metrics\""
    );
    let wrong = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth("s3cret-tokeN")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("qiwi_payments_total 0")
    );
}

#[tokio::test]
async fn housekeeping_prunes_old_log_rows_in_batches_and_a_checkpoint_completes() {
    let app = spawn_app().await;
    assert_eq!(app.pay("1", "acc", "1.00").await.result(), 0);
    {
        let c = app.db_rw();
        c.execute_batch("BEGIN").unwrap();
        for _ in 0..1200 {
            c.execute(
                "INSERT INTO qiwi_http_log (ip, url, method, headers, created_at, status)
                 VALUES ('127.0.0.1', '/payment', 'GET', '{}', datetime('now', '-91 days'), 200)",
                [],
            )
            .unwrap();
        }
        // an old payment: never pruned
        c.execute(
            "UPDATE qiwi_transaction SET created_at = datetime('now', '-400 days')",
            [],
        )
        .unwrap();
        c.execute_batch("COMMIT").unwrap();
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let report = qiwi_gateway::ops::housekeeping::once(
        &app.state.db,
        app.state.config.ops.log_retention,
        &stop,
    )
    .await;
    assert_eq!(report.pruned, 1200);
    // The database's own checkpointer thread (every second) or a pooled reader may hold the WAL
    // at that moment: a PASSIVE checkpoint then reports busy or stops short of the end. Poll
    // (generously) until one completes; the last one is what is asserted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let cp = loop {
        let cp = qiwi_gateway::ops::housekeeping::checkpoint(&app.state.config.ops.database_path)
            .await
            .expect("a checkpoint ran");
        if (!cp.busy && cp.checkpointed == cp.log) || std::time::Instant::now() >= deadline {
            break cp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!cp.busy && cp.checkpointed == cp.log, "{cp:?}");
    // the pay's own log row (today) and the payment remain
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_http_log"), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 1);
}

/// The gateway's log lines, captured on this thread (a `#[tokio::test]` runs the gateway's
/// tasks on it too) while the returned guard lives.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("qiwi_gateway=debug"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// How many lines contain `text`.
    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Waits (polling, up to 30 s) until `n` lines contain `text`.
    async fn wait_for(&self, text: &str, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.count(text) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no {n} log lines with {text:?} in 30 s; the log:\n{}",
                String::from_utf8_lossy(&self.0.lock().unwrap())
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn housekeeping_runs_in_the_background_and_keeps_everything_when_retention_is_off() {
    const ROUND: &str = "housekeeping round finished";
    let logs = Logs::default();
    let _guard = logs.capture();
    let app = spawn_app_with(|c| {
        c.ops.log_retention = None;
        c.ops.timings.housekeeping = std::time::Duration::from_millis(50);
    })
    .await;
    app.db_rw()
        .execute(
            "INSERT INTO qiwi_http_log (ip, url, method, headers, created_at, status)
             VALUES ('127.0.0.1', '/payment', 'GET', '{}', '2001-01-01 00:00:00', 200)",
            [],
        )
        .unwrap();
    // Two more rounds finished: at least one ran entirely after the old row was there.
    logs.wait_for(ROUND, logs.count(ROUND) + 2).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_http_log"), 1);

    let app =
        spawn_app_with(|c| c.ops.timings.housekeeping = std::time::Duration::from_millis(50)).await;
    app.db_rw()
        .execute(
            "INSERT INTO qiwi_http_log (ip, url, method, headers, created_at, status)
             VALUES ('127.0.0.1', '/payment', 'GET', '{}', '2001-01-01 00:00:00', 200)",
            [],
        )
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.count("SELECT COUNT(*) FROM qiwi_http_log") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the old row is still there after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, as PEM (certificate, key).
/// A gateway serving HTTPS from `cert.pem` and `key.pem` in `dir`, a fresh self-signed pair
/// watched every 50 ms: the app, the two paths and the certificate's PEM.
async fn spawn_tls_app(
    dir: &std::path::Path,
) -> (TestApp, std::path::PathBuf, std::path::PathBuf, String) {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (cert, key) = self_signed();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let app = spawn_app_with(|c| {
        c.server.tls = Some(qiwi_gateway::config::TlsFiles {
            cert: cert_path.clone(),
            key: key_path.clone(),
        });
        c.ops.timings.tls_watch = std::time::Duration::from_millis(50);
    })
    .await;
    (app, cert_path, key_path, cert)
}

fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A client that trusts only `cert_pem`, and reports the certificate the server sent.
fn client_trusting(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .tls_info(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn built_in_tls_serves_https_and_reloads_a_changed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (app, cert_path, key_path, cert_a) = spawn_tls_app(dir.path()).await;
    let url = format!(
        "https://localhost:{}/payment?command=check&txn_id=1&account=a&sum=1",
        app.addr.port()
    );

    let a = client_trusting(&cert_a);
    let resp = a.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("<result>0</result>"));
    // the certificate's expiry is on /readyz and /metrics
    let base = format!("https://localhost:{}", app.addr.port());
    let get = |path: &str| a.get(format!("{base}{path}")).send();
    let ready = get("/readyz").await.unwrap().text().await.unwrap();
    assert!(
        ready.contains("tls: file certificate for localhost from rcgen self signed cert"),
        "{ready}"
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("qiwi_tls_certificate_expiry_seconds{source=\"file\"}"),
        "{metrics}"
    );
    // plain HTTP on the HTTPS port gets no answer
    assert!(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err()
    );

    // Renew: new key and certificate written in place; the listener stays, the new
    // certificate is served to new connections.
    let (cert_b, key_b) = self_signed();
    std::fs::write(&key_path, &key_b).unwrap();
    std::fs::write(&cert_path, &cert_b).unwrap();
    let b = client_trusting(&cert_b);
    let mut served_b = false;
    for _ in 0..100 {
        if let Ok(r) = b.get(&url).send().await {
            assert_eq!(r.status(), 200);
            served_b = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served_b, "the renewed certificate was never served");
    // a fresh client trusting only the old certificate is now refused
    assert!(client_trusting(&cert_a).get(&url).send().await.is_err());
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_http_log"), 2);
}

/// Over a TLS connection to 127.0.0.1:`port` that trusts only `cert_pem` and offers `offer`
/// in ALPN, as a browser does (`h2, http/1.1`): sends `GET /healthz` as HTTP/1.1, and returns
/// the protocol the server picked and the answer's status line.
async fn alpn_get_healthz(port: u16, cert_pem: &str, offer: &[&[u8]]) -> (Option<String>, String) {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = offer.iter().map(|p| p.to_vec()).collect();
    tokio::task::spawn_blocking(move || {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        // the server closes after its answer (Connection: close); rustls reports an unclean
        // close as an error, which is no concern here
        let _ = tls.read_to_end(&mut answer);
        let alpn = tls
            .conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let answer = String::from_utf8_lossy(&answer);
        (alpn, answer.lines().next().unwrap_or_default().to_owned())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn https_from_files_offers_only_http_1_1_before_and_after_a_reload() {
    const BROWSER: &[&[u8]] = &[b"h2", b"http/1.1"];
    let dir = tempfile::tempdir().unwrap();
    let (app, cert_path, key_path, cert_a) = spawn_tls_app(dir.path()).await;
    let port = app.addr.port();
    let url = format!("https://localhost:{port}/healthz");
    assert_eq!(
        alpn_get_healthz(port, &cert_a, BROWSER).await,
        (Some("http/1.1".into()), "HTTP/1.1 200 OK".into())
    );
    // reqwest with its http2 feature offers `h2, http/1.1` too, and gets HTTP/1.1
    let resp = client_trusting(&cert_a).get(&url).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, reqwest::Version::HTTP_11)
    );

    // a renewed certificate is served with the same protocols
    let (cert_b, key_b) = self_signed();
    std::fs::write(&key_path, &key_b).unwrap();
    std::fs::write(&cert_path, &cert_b).unwrap();
    let b = client_trusting(&cert_b);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let resp = loop {
        if let Ok(r) = b.get(&url).send().await {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, reqwest::Version::HTTP_11)
    );
    assert_eq!(
        alpn_get_healthz(port, &cert_b, BROWSER).await,
        (Some("http/1.1".into()), "HTTP/1.1 200 OK".into())
    );
}

#[tokio::test]
async fn a_broken_renewal_keeps_the_previous_certificate() {
    const REFUSED: &str = "does not load; still serving the previous one";
    let logs = Logs::default();
    let _guard = logs.capture();
    let dir = tempfile::tempdir().unwrap();
    let (app, cert_path, key_path, cert_a) = spawn_tls_app(dir.path()).await;
    // a key that does not belong to the certificate: the watcher sees it and refuses it
    let (_, other_key) = self_signed();
    std::fs::write(&key_path, other_key).unwrap();
    logs.wait_for(REFUSED, 1).await;
    let url = format!("https://localhost:{}/healthz", app.addr.port());
    let resp = client_trusting(&cert_a).get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // a later good pair loads: new connections get the new certificate
    let (cert_c, key_c) = self_signed();
    std::fs::write(&key_path, &key_c).unwrap();
    std::fs::write(&cert_path, &cert_c).unwrap();
    let c = client_trusting(&cert_c);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(r) = c.get(&url).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the good certificate was never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(logs.count("reloaded the TLS certificate") >= 1);
}

#[tokio::test]
async fn external_checkpointing_stops_the_gateways_own_checkpoints() {
    let app = spawn_app().await;
    assert!(app.state.db.background_checkpoints());
    let app = spawn_app_with(|c| {
        c.ops.db_checkpoint = qiwi_gateway::config::Checkpointing::External;
    })
    .await;
    assert!(!app.state.db.background_checkpoints());
}

/// Polls `cond` every 20 ms for up to 5 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..250 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn metrics_count_webhook_attempts_by_outcome() {
    use axum::http::StatusCode;
    use axum::routing::post;
    let backend = spawn_backend(
        axum::Router::new()
            .route("/ok", post(|| async { StatusCode::OK }))
            .route("/bad", post(|| async { StatusCode::INTERNAL_SERVER_ERROR })),
    )
    .await;
    for (url, outcome) in [
        (format!("{backend}/ok"), "delivered"),
        (format!("{backend}/bad"), "rejected"),
        (refused_url().await, "no_answer"),
    ] {
        let app = spawn_app_with(|c| c.webhook.url = Some(url.parse().unwrap())).await;
        assert_eq!(app.pay("1", "acc", "1.00").await.result(), 0);
        until("an attempt", || {
            app.count("SELECT COUNT(*) FROM qiwi_webhook_attempt") >= 1
        })
        .await;
        let text = app.get("/metrics").await.text().await.unwrap();
        let series = format!("qiwi_webhook_attempts_total{{outcome=\"{outcome}\"}}");
        assert_eq!(sample(&text, &series), Some(1.0), "{series} in {text}");
        let backlog = if outcome == "delivered" { 0.0 } else { 1.0 };
        assert_eq!(
            sample(&text, "qiwi_webhook_backlog"),
            Some(backlog),
            "{text}"
        );
    }
}
