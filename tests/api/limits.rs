//! Issue 19: what an outsider can make the gateway write, hold or wait for, measured through
//! real HTTP against the real router: refused requests are decided from the head and stored
//! bounded; slow clients are cut; a declared over-size body is answered 413 at once; the
//! connection limit holds, and one address cannot take every connection (the per-address cap);
//! both limits are counted when hit.

use std::time::Duration;

use qiwi_gateway::config::{BasicAuth, Secret};
use qiwi_gateway::http::payment_guard::{REFUSED_HEADERS_CAP, REFUSED_ROWS_PER_ADDRESS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Generous bound for what must happen "at once" or "at the timeout": only a server that
/// waits for the body, or never cuts the client, reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

fn auth() -> Option<BasicAuth> {
    Some(BasicAuth {
        username: "qiwi".into(),
        password: Secret("s3cret-pass".into()),
    })
}

/// Sends `head` (and nothing more) and returns whatever the server answers until it closes
/// the connection or answers a full head; panics after [`PATIENCE`].
async fn send_head(addr: std::net::SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server waited instead of answering from the head");
    String::from_utf8_lossy(&got).into_owned()
}

/// The database's size in bytes as the latest snapshot sees it (WAL included).
fn db_bytes(app: &TestApp) -> i64 {
    app.count("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
}

#[tokio::test]
async fn refused_requests_are_answered_from_the_head_and_stored_bounded() {
    let app = spawn_app_with(|c| c.qiwi.http_auth = auth()).await;

    // The body is announced and never sent: only a server that decides from the head answers.
    let head = "POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: \
                application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n";
    let answer = send_head(app.addr, head).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // The flood of the issue, within the 32 KiB head hyper accepts: 7 headers of 4,000
    // bytes and a 60 KiB body per request.
    let before = db_bytes(&app);
    let rows_before = app.count("SELECT COUNT(*) FROM qiwi_http_log");
    let n = 200;
    let big = "v".repeat(4000);
    let body = "a=".to_owned() + &"b".repeat(60 * 1024);
    let sends = (0..n).map(|_| {
        let mut rb = app
            .client
            .post(format!("{}/payment?command=check&txn_id=1", app.base))
            .basic_auth("qiwi", Some("wrong"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        for i in 0..7 {
            rb = rb.header(format!("x-flood-{i}"), big.as_str());
        }
        async move { rb.send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures::future::join_all(sends).await;
    // A refused request's connection is closed without reading the body, so a client still
    // sending may see the reset instead of the 401: either way nothing was let in.
    let answered_401 = statuses.iter().filter(|s| matches!(s, Ok(401))).count();
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(401) | Err(_))),
        "{statuses:?}"
    );
    assert!(answered_401 > 0);
    let after = db_bytes(&app);
    let rows = app.count("SELECT COUNT(*) FROM qiwi_http_log") - rows_before;
    let per_request = (after - before) as f64 / f64::from(n);
    let stored: i64 = app.count(&format!(
        "SELECT COALESCE(MAX(length(headers)), 0) FROM qiwi_http_log WHERE id > {rows_before}"
    ));
    let body_bytes = app.count("SELECT COALESCE(SUM(length(body)), 0) FROM qiwi_http_log");
    println!(
        "flood of {n} refused requests of ~88 KiB: {rows} rows stored, database grew {} bytes \
         ({per_request:.0} bytes per refused request), largest stored header set {stored} bytes",
        after - before
    );
    assert!(rows >= 1, "refused requests are still logged");
    assert!(rows <= i64::from(REFUSED_ROWS_PER_ADDRESS), "{rows} rows");
    assert!(stored <= REFUSED_HEADERS_CAP as i64, "{stored}");
    assert_eq!(body_bytes, 0, "no refused body is stored");
    assert!(
        per_request <= 2048.0,
        "{per_request} bytes per refused request"
    );
    let omitted = app.count(&format!(
        "SELECT COUNT(*) FROM qiwi_http_log WHERE id > {rows_before} AND headers LIKE '%more headers%'"
    ));
    assert_eq!(omitted, rows, "every stored row says what it left out");
}

#[tokio::test]
async fn an_address_outside_the_allow_list_is_refused_from_the_head() {
    let app = spawn_app_with(|c| c.qiwi.allowed_ips = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let head = "POST /payment HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n";
    let answer = send_head(app.addr, head).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let (status, body_len): (i64, i64) = app
        .db()
        .query_row(
            "SELECT status, length(body) FROM qiwi_http_log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status, body_len), (403, 0));
}

#[tokio::test]
async fn a_declared_body_over_the_cap_is_answered_413_at_once_and_logged() {
    let app = spawn_app_with(|c| c.qiwi.http_auth = auth()).await;
    // Authenticated: base64("qiwi:s3cret-pass").
    let head = "POST /payment HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cWl3aTpzM2NyZXQtcGFzcw==\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 99999999999\r\n\r\n";
    let answer = send_head(app.addr, head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let (status, headers): (i64, String) = app
        .db()
        .query_row(
            "SELECT status, headers FROM qiwi_http_log ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, 413);
    assert!(headers.contains("Basic qiwi:***"), "{headers}");
    // The admin UI's forms too: the login form is answered before it is read.
    let head = "POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n";
    let answer = send_head(app.addr, head).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// Drips `drip` one chunk at a time after `head` until the server closes the connection;
/// returns what it answered. Panics if the connection is still open after [`PATIENCE`].
async fn drip_until_closed(addr: std::net::SocketAddr, head: &str, drip: &[u8]) -> String {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = rd.read_to_end(&mut got).await;
        String::from_utf8_lossy(&got).into_owned()
    });
    let dripping = async {
        for b in drip.iter().cycle() {
            // The attack: one byte every 200 ms.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = dripping => {}
        _ = tokio::time::sleep(PATIENCE) => panic!("a client dripping bytes was never cut"),
        _ = async { while !reader.is_finished() { tokio::time::sleep(Duration::from_millis(50)).await } } => {}
    }
    tokio::time::timeout(PATIENCE, reader)
        .await
        .expect("the connection stayed open")
        .unwrap()
}

#[tokio::test]
async fn a_slow_head_is_cut_at_the_header_timeout_and_idle_connections_close() {
    let app = spawn_app_with(|c| c.server.header_timeout = Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let answer = drip_until_closed(
        app.addr,
        "GET /payment?command=check HTTP/1.1\r\nHost: x\r\n",
        b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
    )
    .await;
    println!(
        "a head dripped at 5 bytes/s was cut after {} ms (header timeout 1 s)",
        started.elapsed().as_millis()
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A kept-alive connection that sends nothing more is closed too.
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut got))
        .await
        .expect("an idle kept-alive connection stayed open")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn a_body_still_dripping_at_the_request_deadline_is_answered_and_logged() {
    let app = spawn_app_with(|c| c.server.request_timeout = Duration::from_secs(2)).await;
    let answer = drip_until_closed(
        app.addr,
        "POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 10000\r\nConnection: close\r\n\r\ncommand=check",
        b"&a=bbbbbbbbbbbbbbbbbbbbbbb",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM qiwi_http_log WHERE status = 400"),
        1
    );
}

#[tokio::test]
async fn connections_over_the_limit_wait_until_one_closes() {
    let app = spawn_app_with(|c| c.server.max_connections = 2).await;
    let held: Vec<TcpStream> = futures::future::join_all((0..2).map(|_| async {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        // A request answered proves the server took the connection (and its permit).
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        s
    }))
    .await;
    // A third client is not served while both are held...
    let third = app
        .client
        .get(format!("{}/healthz", app.base))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(third.is_err(), "served beyond the limit: {third:?}");
    // The limit being hit is counted (once while it lasts).
    metric_reaches(
        &app,
        r#"qiwi_connection_limit_hits_total{limit="total"}"#,
        1,
    )
    .await;
    // ...and is once one of them closes.
    drop(held);
    let fourth = tokio::time::timeout(
        PATIENCE,
        app.client.get(format!("{}/healthz", app.base)).send(),
    )
    .await
    .expect("a freed permit was not given to a waiting connection")
    .unwrap();
    assert_eq!(fourth.status(), 200);
}

/// Posts the login form (the double-submit token is any value equal in cookie and form).
async fn post_login(client: &reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    client
        .post(format!("{base}/admin/login"))
        .header("cookie", "qg_login_csrf=t")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf=t&next=%2Fadmin&username=admin&password={password}"
        ))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_end_when_the_configured_admin_password_changes() {
    let app = spawn_app_with(|c| {
        c.admin.password = Some(Secret("first-password-123".into()));
    })
    .await;
    let resp = post_login(&app.client, &app.base, "first-password-123").await;
    assert_eq!(resp.status(), 303);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("qg_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let dashboard = |app: &TestApp| {
        app.client
            .get(format!("{}/admin", app.base))
            .header("cookie", session.clone())
            .send()
    };
    assert_eq!(dashboard(&app).await.unwrap().status(), 200);

    // The same password after a restart: the session stays.
    let restart = |app: TestApp, password: &'static str| async move {
        let dir = app.stop().await;
        let mut config = test_config(&dir);
        config.admin.password = Some(Secret(password.into()));
        start_in(dir, config).await
    };
    let app = restart(app, "first-password-123").await;
    assert_eq!(dashboard(&app).await.unwrap().status(), 200);

    // Another password: the old session ends; the new password logs in, the old one not.
    let app = restart(app, "second-password-456").await;
    let resp = dashboard(&app).await.unwrap();
    assert_eq!(resp.status(), 303, "the old session survived the change");
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_session"), 0);
    let resp = post_login(&app.client, &app.base, "first-password-123").await;
    assert_eq!(resp.status(), 401);
    let resp = post_login(&app.client, &app.base, "second-password-456").await;
    assert_eq!(resp.status(), 303);
}

/// The real binary on 127.0.0.1:0; killed when dropped.
struct Binary {
    child: std::process::Child,
    base: String,
}

impl Binary {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Binary {
        use std::io::BufRead;
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_qiwi-gateway"));
        c.env_clear()
            .current_dir(dir)
            .env("DATABASE_PATH", dir.join("qiwi.db"))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(PATIENCE)
            .expect("the gateway logs its address");
        Binary {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// A line of /proc/<pid>/status, in kB.
    fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 300 concurrent logins with `client_for(i)`'s address; the statuses answered.
async fn login_burst(
    base: &str,
    client_for: impl Fn(usize) -> reqwest::Client,
) -> std::collections::BTreeMap<u16, usize> {
    let sends = (0..300).map(|i| {
        let client = client_for(i);
        let base = base.to_owned();
        async move {
            post_login(&client, &base, &format!("wrong-guess-{i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let mut counts = std::collections::BTreeMap::new();
    for s in futures::future::join_all(sends).await {
        *counts.entry(s).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn concurrent_wrong_logins_get_at_most_the_limit_and_memory_stays_bounded() {
    use qiwi_gateway::admin::limiter::{GLOBAL_FAILURES, LIMIT_FAILURES};
    let dir = tempfile::tempdir().unwrap();
    // 300 concurrent connections from one address: the login limiter is what is measured,
    // not the per-address connection cap.
    let gw = Binary::start(
        dir.path(),
        &[
            ("ADMIN_PASSWORD", "the-right-password-1"),
            ("HTTP_MAX_CONNECTIONS_PER_IP", "0"),
        ],
    );
    let rss_before = gw.status_kb("VmHWM:");

    // One address.
    let one = reqwest::Client::new();
    let counts = login_burst(&gw.base, |_| one.clone()).await;
    let failed_one = counts.get(&401).copied().unwrap_or(0);
    println!("300 concurrent wrong logins from one address: {counts:?}");
    assert!((1..=LIMIT_FAILURES).contains(&failed_one), "{counts:?}");
    assert_eq!(failed_one + counts.get(&429).copied().unwrap_or(0), 300);

    // 300 addresses (127.0.1.0 to 127.0.2.43): each has its own budget; the global one holds.
    let counts = login_burst(&gw.base, |i| {
        let ip = std::net::Ipv4Addr::new(127, 0, 1 + (i / 256) as u8, (i % 256) as u8);
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(ip))
            .build()
            .unwrap()
    })
    .await;
    let failed_many = counts.get(&401).copied().unwrap_or(0);
    println!("300 concurrent wrong logins from 300 addresses: {counts:?}");
    assert!(failed_one + failed_many <= GLOBAL_FAILURES, "{counts:?}");
    assert_eq!(failed_many + counts.get(&429).copied().unwrap_or(0), 300);

    let peak = gw.status_kb("VmHWM:");
    println!(
        "peak resident memory of the gateway: {} MiB before the bursts, {} MiB after",
        rss_before / 1024,
        peak / 1024
    );
    // Two argon2 checks per core at most (19 MiB each) on top of the idle process.
    assert!(peak < 256 * 1024, "VmHWM {peak} kB");
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_full_and_recovers() {
    let app = spawn_app().await;
    let readyz = || async {
        app.client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(readyz().await, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM readiness_heartbeat"), 1);
    // Cap the file at its current size on the writer's connection (as a full disk would).
    let set_cap = |cap: Option<i64>| {
        app.state.db.writer().write(move |c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.pragma_update(None, "max_page_count", cap.unwrap_or(pages))?;
            Ok(())
        })
    };
    set_cap(None).await.unwrap();
    // Pay until pays are refused: then readiness must fail too.
    let mut refused = false;
    for i in 0..2000 {
        if app
            .pay(&format!("{}", 1000 + i), &"x".repeat(150), "1")
            .await
            .result()
            == 1
        {
            refused = true;
            break;
        }
    }
    assert!(refused, "the capped database never filled");
    assert_eq!(readyz().await, 503, "ready while pays are answered 1");
    set_cap(Some(1 << 30)).await.unwrap();
    assert_eq!(readyz().await, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM readiness_heartbeat"), 1);
}

#[tokio::test]
async fn malformed_authorization_headers_are_stored_as_stars_only() {
    let app = spawn_app().await;
    for value in [
        "qiwi:s3cret-pass",
        "Basic\tcWl3aTpzM2NyZXQtcGFzcw==",
        "Basic,cWl3aTpzM2NyZXQtcGFzcw==",
        "s3cret-pass trailing",
    ] {
        let resp = app
            .client
            .get(format!(
                "{}/payment?command=check&txn_id=1&account=a&sum=1",
                app.base
            ))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let headers: String = app
            .db()
            .query_row(
                "SELECT headers FROM qiwi_http_log ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&headers).unwrap();
        assert_eq!(json["authorization"], "***", "{value}: {headers}");
        assert!(!headers.contains("s3cret"), "{headers}");
        assert!(!headers.contains("cWl3aT"), "{headers}");
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_gateway_serves_tls() {
    let login_cookie = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("qg_login_csrf="))
            .unwrap()
            .to_owned()
    };
    let plain = spawn_app().await;
    let resp = plain
        .client
        .get(format!("{}/admin/login", plain.base))
        .send()
        .await
        .unwrap();
    assert!(!login_cookie(&resp).contains("Secure"));

    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(|c| {
        c.server.tls = Some(qiwi_gateway::config::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
        c.admin.password = Some(Secret("tls-password-123".into()));
    })
    .await;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", app.addr.port());
    let resp = client
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap();
    assert!(login_cookie(&resp).contains("; Secure"));
    let resp = post_login(&client, &base, "tls-password-123").await;
    assert_eq!(resp.status(), 303);
    let session = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("qg_session="))
        .unwrap()
        .to_owned();
    assert!(session.contains("; Secure"), "{session}");
}

#[tokio::test]
async fn a_head_over_32_kib_is_answered_431_and_stores_nothing() {
    let app = spawn_app_with(|c| c.qiwi.http_auth = auth()).await;
    // The issue's flood: 75 headers of 4,000 bytes.
    let mut head = String::from("POST /payment HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n");
    for i in 0..75 {
        head.push_str(&format!("X-Flood-{i}: {}\r\n", "v".repeat(4000)));
    }
    head.push_str("\r\n");
    let answer = send_head(app.addr, &head).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_http_log"), 0);
}

/// A `GET` head of exactly `size` bytes: `target` padded with a long query parameter.
fn head_of(size: usize, target: &str) -> String {
    let prefix = format!("GET {target}&pad=");
    let suffix = " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let head = format!(
        "{prefix}{}{suffix}",
        "a".repeat(size - prefix.len() - suffix.len())
    );
    assert_eq!(head.len(), size);
    head
}

#[tokio::test]
async fn heads_up_to_32_kib_are_served_and_larger_ones_431_even_in_one_read() {
    let app = spawn_app().await;
    // Sent in one write, these reach hyper in one read: hyper parses and would serve them
    // up to its buffer's capacity (49,000 bytes were served before this cap was enforced).
    let cap = qiwi_gateway::http::limits::MAX_HEAD;
    let answer = send_head(app.addr, &head_of(cap, "/healthz?")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for size in [cap + 1, 40_044, 49_000] {
        let answer = send_head(app.addr, &head_of(size, "/healthz?")).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{size}: {answer}");
    }
    // the newcomer's 40,044-byte pay: 431, and nothing stored
    let pay = "/payment?command=pay&txn_id=1&account=a&sum=1&txn_date=20240101120000";
    let answer = send_head(app.addr, &head_of(40_044, pay)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_http_log"), 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
    // within the head cap the same pay is served, but its URL is over the 4 KiB a QIWI request
    // carries: 300 (request too large), logged cut, not stored (db::http_log::FIELD_CAP)
    let answer = send_head(app.addr, &head_of(cap, pay)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("<result>300</result>"), "{answer}");
    assert_eq!(app.count("SELECT COUNT(*) FROM qiwi_transaction"), 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM qiwi_http_log WHERE result = 300 AND url LIKE '%received]'"
        ),
        1
    );
}

/// The value of the sample `name` (with its labels) in the gateway's metrics, 0 when absent.
fn metric(app: &TestApp, name: &str) -> u64 {
    app.metric(name) as u64
}

/// Polls until `metric(app, name)` is `want`; panics after [`PATIENCE`].
async fn metric_reaches(app: &TestApp, name: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(app, name) != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {} (wanted {want})",
            metric(app, name)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection from the local address `from` (any 127.x.y.z works on Linux loopback).
async fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends a `GET /healthz` on `s` and returns what comes back until the server closes the
/// connection or has answered (empty when it closed without answering); panics after
/// [`PATIENCE`].
async fn healthz_on(s: &mut TcpStream) -> String {
    // The server may have closed the connection already: a failed write is an answer too.
    let _ = s
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
        .await
        .expect("neither answered nor closed")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

const OPEN: &str = "qiwi_connections_open";
const PER_IP_HITS: &str = r#"qiwi_connection_limit_hits_total{limit="per_ip"}"#;

#[tokio::test]
async fn one_address_over_its_cap_is_closed_while_another_is_served() {
    let app = spawn_app_with(|c| {
        c.server.max_connections_per_ip = 3;
        // The held connections send nothing: they must outlast the test.
        c.server.header_timeout = Duration::from_secs(600);
    })
    .await;
    // Three idle half-open connections from 127.0.0.1: the cap.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.1", app.addr).await);
    }
    metric_reaches(&app, OPEN, 3).await;
    // Two more from the same address are closed without an answer, and counted.
    for n in 1..=2 {
        let mut extra = connect_from("127.0.0.1", app.addr).await;
        assert_eq!(healthz_on(&mut extra).await, "", "served over the cap");
        metric_reaches(&app, PER_IP_HITS, n).await;
    }
    // Another address is served at once...
    let mut other = connect_from("127.0.0.2", app.addr).await;
    let answer = healthz_on(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // ...and the capped address again once one of its connections closes.
    drop(held.pop());
    metric_reaches(&app, OPEN, 3).await;
    let mut again = connect_from("127.0.0.1", app.addr).await;
    let answer = healthz_on(&mut again).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(metric(&app, PER_IP_HITS), 2);
}

#[tokio::test]
async fn the_per_address_cap_off_or_a_trusted_proxy_admits_every_connection() {
    for (cap, trusted) in [(0, vec![]), (2, nets(&["127.0.0.1/32"]))] {
        let app = spawn_app_with(|c| {
            c.server.max_connections_per_ip = cap;
            c.server.trusted_proxies = trusted;
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..5 {
            let mut s = connect_from("127.0.0.1", app.addr).await;
            let answer = healthz_on(&mut s).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "cap {cap}: {answer}");
            held.push(s);
        }
        assert_eq!(metric(&app, OPEN), 5);
        assert_eq!(metric(&app, PER_IP_HITS), 0);
    }
}
