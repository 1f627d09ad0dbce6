//! The binary end to end: subcommands against a real database, and the real server process
//! (signals, JSON logs, backups under load).

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_qiwi-gateway");

/// The binary with an empty environment, run in `dir` (so no stray ./config.toml is read).
fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().current_dir(dir);
    c
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = cmd(dir);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A gateway process on 127.0.0.1 with JSON logs; killed when dropped.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    db: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Gateway {
        let db = dir.join("qiwi.db");
        let mut c = cmd(dir);
        c.env("DATABASE_PATH", &db)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let addr = common::listening_addr(&mut child, Duration::from_secs(20), move |line| {
            sink.lock().unwrap().push(line)
        });
        Gateway {
            child,
            addr,
            db,
            logs,
        }
    }

    fn signal(&self, sig: Signal) {
        // kill(2) on our own child's pid.
        kill_process(Pid::from_child(&self.child), sig).unwrap();
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the gateway did not exit within {limit:?}");
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    fn count(&self, sql: &str) -> i64 {
        let c = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pay_query(txn_id: u64) -> String {
    format!("/payment?command=pay&txn_id={txn_id}&account=acc&sum=1.50&txn_date=20240101120000")
}

fn result_of(xml: &str) -> Option<&str> {
    xml.split("<result>").nth(1)?.split("</result>").next()
}

#[test]
fn version_names_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("qiwi-gateway {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_prints_values_with_their_source_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "listen_addr = \"127.0.0.1:9000\"\nhttp_auth_username = \"qiwi\"\nhttp_auth_password = \"hunter2\"\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["check-config"],
        &[
            ("METRICS_TOKEN", "tok-secret"),
            ("LOG_RETENTION_DAYS", "30"),
            ("MAX_SUMM", "5"),
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A misspelled variable is read by nothing: check-config says so and names the key.
    assert!(
        stdout.contains("# MAX_SUMM is set but is not a setting (ignored): did you mean MAX_SUM?"),
        "{stdout}"
    );
    assert!(!stdout.contains("# METRICS_TOKEN is set"));
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in {stdout}"))
            .to_owned()
    };
    assert!(
        line("listen_addr").contains("\"127.0.0.1:9000\"")
            && line("listen_addr").contains("# file config.toml")
    );
    assert!(
        line("log_retention_days").contains("30")
            && line("log_retention_days").ends_with("# env LOG_RETENTION_DAYS")
    );
    assert!(line("min_sum").ends_with("# default"));
    assert!(line("http_auth_password").contains("\"***\""));
    assert!(line("metrics_token").contains("\"***\""));
    assert!(!stdout.contains("hunter2") && !stdout.contains("tok-secret"));
}

#[test]
fn configuration_errors_are_one_line_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["check-config"][..], &["serve"], &["migrate"]] {
        let out = run(
            dir.path(),
            args,
            &[("QIWI_ALLOWED_IPS", "79.142.16.0/20,qiwi.ru")],
        );
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("qiwi_allowed_ips") && stderr.contains("QIWI_ALLOWED_IPS"));
    }
    let out = run(
        dir.path(),
        &["--config", "missing.toml", "check-config"],
        &[],
    );
    assert!(!out.status.success());
    assert_eq!(text(&out.stderr).lines().count(), 1);
}

#[test]
fn migrate_creates_the_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/qiwi.db");
    let env = [("DATABASE_PATH", db.to_str().unwrap())];
    for _ in 0..2 {
        let out = run(dir.path(), &["migrate"], &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("schema version"));
    }
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM qiwi_transaction", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn resend_makes_one_or_every_undelivered_delivery_due() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    let env = [("DATABASE_PATH", db.to_str().unwrap())];
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        for (code, status) in [("1", 1), ("2", 0), ("3", 0)] {
            c.execute(
                "INSERT INTO qiwi_transaction
                     (account, code, sum, status, created_at, sum_minor, txn_date)
                 VALUES ('a', ?1, 1.0, ?2, '2024-01-01 00:00:00', 100, '20240101000000')",
                rusqlite::params![code, status],
            )
            .unwrap();
        }
    }
    let due = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut s = c
            .prepare(
                "SELECT code FROM qiwi_transaction WHERE delivery_due_ms IS NOT NULL ORDER BY id",
            )
            .unwrap();
        s.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let out = run(dir.path(), &["resend", "--id", "1"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(due(), ["1"]);
    let out = run(dir.path(), &["resend", "--all"], &env);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("2 undelivered"));
    assert_eq!(due(), ["1", "2", "3"]);

    let out = run(dir.path(), &["resend", "--id", "99"], &env);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "qiwi-gateway: no transaction with id 99"
    );
    assert!(!run(dir.path(), &["resend"], &env).status.success());
    assert!(
        !run(dir.path(), &["resend", "--id", "1", "--all"], &env)
            .status
            .success()
    );
}

#[test]
fn healthcheck_exits_0_only_when_the_gateway_answers() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &[]);
    let addr = gw.addr.to_string();
    let out = run(dir.path(), &["healthcheck"], &[("LISTEN_ADDR", &addr)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(gw);
    let out = run(dir.path(), &["healthcheck"], &[("LISTEN_ADDR", &addr)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_a_load_of_pays_holds_every_payment_answered_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let answered: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (client, answered, stop, failures) = (
            client.clone(),
            answered.clone(),
            stop.clone(),
            failures.clone(),
        );
        let base = gw.url("");
        workers.push(tokio::spawn(async move {
            // bounded: at most 2000 pays per worker, and the test stops them sooner
            for i in 0..2000u64 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let txn = 1_000_000 * (w + 1) + i;
                let body = client
                    .get(format!("{base}{}", pay_query(txn)))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                if result_of(&body) == Some("0") {
                    let prv = body
                        .split("<prv_txn>")
                        .nth(1)
                        .unwrap()
                        .split('<')
                        .next()
                        .unwrap();
                    answered.lock().unwrap().push((txn, prv.to_owned()));
                } else {
                    failures.lock().unwrap().push(body);
                }
            }
        }));
    }
    while answered.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<(u64, String)> = answered.lock().unwrap().clone();
    let target = dir.path().join("backup.db");
    let out = {
        let (dir, db, target) = (dir.path().to_owned(), gw.db.clone(), target.clone());
        tokio::task::spawn_blocking(move || {
            run(
                &dir,
                &["backup", "--to", target.to_str().unwrap()],
                &[("DATABASE_PATH", db.to_str().unwrap())],
            )
        })
        .await
        .unwrap()
    };
    let during = answered.lock().unwrap().len() - before.len();
    // let the load go on after the backup too, then stop it
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("backup written to"));
    // both reports of the size are the file's size, in bytes
    let size = std::fs::metadata(&target).unwrap().len();
    assert!(size > 1024, "{size}");
    assert!(
        text(&out.stdout).ends_with(&format!(", {size} bytes\n")),
        "{}",
        text(&out.stdout)
    );
    let done = format!("backup: done, {size} bytes (");
    assert!(
        text(&out.stderr).lines().any(|l| l.starts_with(&done)),
        "no `{done}` in {}",
        text(&out.stderr)
    );
    assert!(
        failures.lock().unwrap().is_empty(),
        "{:?}",
        failures.lock().unwrap()
    );
    let after = answered.lock().unwrap().len();
    assert!(
        after > before.len() + during,
        "payments went on after the backup"
    );

    let copy =
        rusqlite::Connection::open_with_flags(&target, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut find = copy
        .prepare("SELECT id FROM qiwi_transaction WHERE code = ?1")
        .unwrap();
    for (txn, prv) in &before {
        let id: i64 = find
            .query_row([txn.to_string()], |r| r.get(0))
            .unwrap_or_else(|e| panic!("payment {txn} answered before the backup is missing: {e}"));
        assert_eq!(id.to_string(), *prv);
    }
    let in_copy: i64 = copy
        .query_row("SELECT COUNT(*) FROM qiwi_transaction", [], |r| r.get(0))
        .unwrap();
    eprintln!(
        "backup: {} answered before, {during} during, {after} in all; {in_copy} in the copy",
        before.len()
    );
    assert!(in_copy as usize >= before.len());
}

/// Sends a POST /payment whose body is cut in two, returning the stream after the first part.
async fn half_sent_pay(addr: SocketAddr, txn_id: u64) -> (tokio::net::TcpStream, String) {
    let body = format!("command=pay&txn_id={txn_id}&account=acc&sum=7.00&txn_date=20240101120000");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /payment HTTP/1.1\r\nHost: gw\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(20);
    s.write_all(first.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    (s, rest.to_owned())
}

#[tokio::test]
async fn sigterm_lets_a_pay_in_flight_finish_and_store_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), &[]);
    let (mut stream, rest) = half_sent_pay(gw.addr, 424242).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal(Signal::TERM);
    // no new connections once shutting down: the listener closes (polled, with a generous
    // deadline: how soon depends on the machine's load) while the pay is still in flight
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(gw.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener still accepts 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // the request in flight completes and is answered
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(result_of(&answer), Some("0"), "{answer}");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(
        gw.count("SELECT COUNT(*) FROM qiwi_transaction WHERE code = '424242' AND sum_minor = 700"),
        1
    );
}

#[tokio::test]
async fn sigterm_waits_for_a_stalled_request_only_up_to_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), &[("SHUTDOWN_TIMEOUT_SECS", "1")]);
    let (_stream, _rest) = half_sent_pay(gw.addr, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    gw.signal(Signal::TERM);
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn json_logs_have_one_line_per_request_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &[
            ("HTTP_AUTH_USERNAME", "qiwi"),
            ("HTTP_AUTH_PASSWORD", "hunter2"),
        ],
    );
    let resp = reqwest::Client::new()
        .get(gw.url(&pay_query(777)))
        .basic_auth("qiwi", Some("hunter2"))
        .send()
        .await
        .unwrap();
    assert_eq!(result_of(&resp.text().await.unwrap()), Some("0"));
    let wanted = |l: &serde_json::Value| l["message"] == "request" && l["txn_id"] == "777";
    let mut line = None;
    for _ in 0..100 {
        line = gw
            .logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(wanted);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = line.expect("a request line for txn 777");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/payment");
    assert_eq!(line["status"], 200);
    assert_eq!(line["result"], 0);
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
    let all = gw.logs.lock().unwrap().join("\n");
    assert!(!all.contains("hunter2"));
    assert!(
        !all.contains("account=acc"),
        "the query string stays out of the log"
    );
}

fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

#[tokio::test]
async fn sighup_reloads_the_tls_certificate_without_dropping_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert_a, key_a) = self_signed();
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    let gw = Gateway::start(
        dir.path(),
        &[
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    );
    let url = format!("https://localhost:{}/healthz", gw.addr.port());
    let trusting = |pem: &str| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
            .build()
            .unwrap()
    };
    // the container health check speaks HTTPS to a TLS listener, offering `h2, http/1.1` as
    // browsers do: it fails when the listener accepts h2, which it cannot serve
    let out = run(
        dir.path(),
        &["healthcheck"],
        &[
            ("LISTEN_ADDR", &gw.addr.to_string()),
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resp = trusting(&cert_a).get(&url).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, reqwest::Version::HTTP_11)
    );

    let (cert_b, key_b) = self_signed();
    std::fs::write(&cert, &cert_b).unwrap();
    std::fs::write(&key, &key_b).unwrap();
    gw.signal(Signal::HUP);
    let mut ok = false;
    for _ in 0..100 {
        if trusting(&cert_b).get(&url).send().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the new certificate was not served after SIGHUP");
    let logs = gw.logs.lock().unwrap().join("\n");
    assert!(
        logs.lines()
            .any(|l| l.contains("reloaded the TLS certificate") && l.contains("SIGHUP")),
        "{logs}"
    );
}

#[test]
fn admin_set_password_stores_a_hash_from_stdin_and_ends_sessions() {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    let set = |password: &str| {
        let mut child = cmd(dir.path())
            .args(["admin", "set-password"])
            .env("DATABASE_PATH", &db)
            .env("USER", "opsuser")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let short = set("too short");
    assert!(!short.status.success());
    assert!(
        text(&short.stderr).contains("at least 12"),
        "{}",
        text(&short.stderr)
    );

    assert!(
        run(
            dir.path(),
            &["migrate"],
            &[("DATABASE_PATH", db.to_str().unwrap())]
        )
        .status
        .success()
    );
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO admin_session VALUES ('h', 'admin', 'c', '2024-01-01 00:00:00', 99999999999999)",
            [],
        )
        .unwrap();
    let out = set("a long enough passphrase");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = rusqlite::Connection::open(&db).unwrap();
    let hash: String = c
        .query_row("SELECT password_hash FROM admin_password", [], |r| r.get(0))
        .unwrap();
    assert!(!hash.contains("passphrase"));
    let parsed = PasswordHash::new(&hash).unwrap();
    assert!(
        Argon2::default()
            .verify_password(b"a long enough passphrase", &parsed)
            .is_ok()
    );
    assert!(
        Argon2::default()
            .verify_password(b"another one entirely", &parsed)
            .is_err()
    );
    let sessions: i64 = c
        .query_row("SELECT COUNT(*) FROM admin_session", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 0);
    // Audited (issue 16.3): the CLI and the OS user, from the machine itself; the refused
    // short password left no row.
    let audit: Vec<(String, String, String)> = c
        .prepare("SELECT username, ip, action FROM admin_audit")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        audit,
        [(
            "cli:opsuser".to_owned(),
            "local".to_owned(),
            "password-change".to_owned()
        )]
    );
}

/// A private CA and a certificate it signed for `localhost` and 127.0.0.1: (CA PEM, leaf PEM,
/// leaf key PEM).
fn private_ca() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "merchant private CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// An HTTPS webhook receiver on 127.0.0.1 serving `cert`: its port and the bodies it got.
async fn https_receiver(cert: &str, key: &str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| async move {
            sink.lock().unwrap().push(body);
            "ok"
        }),
    );
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(cert.into(), key.into())
        .await
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls)
            .unwrap()
            .serve(app.into_make_service())
            .await
    });
    (port, got)
}

#[tokio::test]
async fn a_private_ca_in_ssl_cert_file_is_trusted_and_without_it_attempts_fail_as_tls() {
    let (ca, leaf, key) = private_ca();
    let (port, got) = https_receiver(&leaf, &key).await;
    let hook = format!("https://localhost:{port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    // With the CA: delivered.
    let gw = Gateway::start(
        dir.path(),
        &[
            ("QIWI_WEBHOOK_URL", &hook),
            ("SSL_CERT_FILE", ca_file.to_str().unwrap()),
        ],
    );
    let answer = reqwest::get(gw.url(&pay_query(7001)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result_of(&answer), Some("0"), "{answer}");
    let until = Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "delivered over https: {bodies:?}");
    assert!(bodies[0].contains("7001"), "{bodies:?}");
    drop(gw);

    // Without it (SSL_CERT_FILE names a missing file): the gateway still starts, says why in
    // one warning, answers the pay, and the attempt is a recorded `tls` failure, due again.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let gw = Gateway::start(
        dir.path(),
        &[
            ("QIWI_WEBHOOK_URL", &hook),
            ("SSL_CERT_FILE", missing.to_str().unwrap()),
        ],
    );
    let answer = reqwest::get(gw.url(&pay_query(7002)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result_of(&answer), Some("0"), "{answer}");
    let until = Instant::now() + Duration::from_secs(30);
    while gw.count("SELECT attempts FROM qiwi_transaction") == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        gw.count(
            "SELECT count(*) FROM qiwi_transaction WHERE attempts >= 1 AND status = 0 \
             AND last_error LIKE 'tls:%' AND delivery_due_ms IS NOT NULL"
        ),
        1,
        "the failed attempt is recorded as tls and scheduled again"
    );
    assert_eq!(
        gw.count("SELECT count(*) FROM qiwi_webhook_attempt WHERE error LIKE 'tls%'"),
        1
    );
    assert_eq!(got.lock().unwrap().len(), 1, "nothing reached the receiver");
    let logs = gw.logs.lock().unwrap().join("\n");
    let warned = logs
        .lines()
        .filter(|l| l.contains("SSL_CERT_FILE=") && l.contains("no-such-ca.pem"))
        .count();
    assert_eq!(warned, 1, "{logs}");
}

/// Asserts `out` failed with exactly one line on stderr that holds each of `needles` exactly
/// once (case-insensitive), and says no part of itself twice. Returns the line.
fn one_clear_line(out: &Output, needles: &[&str]) -> String {
    assert!(!out.status.success(), "it should have failed");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let line = stderr.trim_end().to_owned();
    let lower = line.to_lowercase();
    for n in needles {
        assert_eq!(
            lower.matches(&n.to_lowercase()).count(),
            1,
            "{n:?} once in: {line}"
        );
    }
    for part in line.split(": ").filter(|p| p.len() > 12) {
        assert_eq!(
            line.matches(part).count(),
            1,
            "{part:?} repeated in: {line}"
        );
    }
    assert!(!lower.contains("os error"), "{line}");
    line
}

#[test]
fn a_port_in_use_is_one_line_naming_listen_addr() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = dir.path().join("qiwi.db");
    let out = run(
        dir.path(),
        &["serve"],
        &[
            ("LISTEN_ADDR", &addr),
            ("DATABASE_PATH", db.to_str().unwrap()),
            ("ADMIN_PASSWORD", "a long admin password"),
        ],
    );
    one_clear_line(&out, &[&addr, "already in use", "set LISTEN_ADDR"]);
}

#[test]
fn missing_tls_files_are_one_line_naming_the_file_and_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    let cert = dir.path().join("no-cert.pem");
    let key = dir.path().join("no-key.pem");
    let out = run(
        dir.path(),
        &["serve"],
        &[
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("DATABASE_PATH", db.to_str().unwrap()),
            ("TLS_CERT_FILE", cert.to_str().unwrap()),
            ("TLS_KEY_FILE", key.to_str().unwrap()),
            ("ADMIN_PASSWORD", "a long admin password"),
        ],
    );
    one_clear_line(
        &out,
        &["no-cert.pem", "env TLS_CERT_FILE", "no such file", "fix:"],
    );
}

#[test]
fn an_unwritable_data_folder_names_the_uid_and_the_chown_fix() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let db = data.join("qiwi.db");
    // Root writes anywhere: as root (CI), run the binary as nobody, as a container runs as 10001.
    let me = std::fs::metadata("/proc/self").unwrap();
    let root = std::os::unix::fs::MetadataExt::uid(&me) == 0;
    let (uid, gid) = if root {
        (65534, 65534)
    } else {
        use std::os::unix::fs::MetadataExt;
        (me.uid(), me.gid())
    };
    for args in [&["serve"][..], &["migrate"]] {
        let mut c = cmd(dir.path());
        c.args(args)
            .env("DATABASE_PATH", &db)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("ADMIN_PASSWORD", "a long admin password");
        if root {
            c.uid(uid).gid(gid);
        }
        let out = c.output().unwrap();
        let shown = data.display().to_string();
        one_clear_line(
            &out,
            &[
                "permission denied",
                &format!("uid {uid}"),
                &format!("chown -R {uid}:{gid} {shown}"),
                "named volume",
            ],
        );
    }
}

#[test]
fn a_database_newer_than_the_binary_is_one_line_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    let env = [("DATABASE_PATH", db.to_str().unwrap())];
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    let out = run(dir.path(), &["migrate"], &env);
    one_clear_line(
        &out,
        &[
            "newer than this gateway",
            "schema version 999",
            "restore a backup",
        ],
    );
}

#[test]
fn a_corrupt_database_file_is_one_line_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    std::fs::write(
        &db,
        "this is not a database, it is a text file\n".repeat(200),
    )
    .unwrap();
    for args in [&["migrate"][..], &["serve"]] {
        let out = run(
            dir.path(),
            args,
            &[
                ("DATABASE_PATH", db.to_str().unwrap()),
                ("LISTEN_ADDR", "127.0.0.1:0"),
                ("ADMIN_PASSWORD", "a long admin password"),
            ],
        );
        one_clear_line(&out, &["qiwi.db", "not an SQLite database", "restore it"]);
    }
}

#[test]
fn backup_errors_are_one_line_without_internal_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    let env = [("DATABASE_PATH", db.to_str().unwrap())];
    assert!(run(dir.path(), &["migrate"], &env).status.success());
    let missing = dir.path().join("no-such-folder/b.db");
    let out = run(
        dir.path(),
        &["backup", "--to", missing.to_str().unwrap()],
        &env,
    );
    let line = one_clear_line(&out, &["b.db", "does not exist", "mkdir"]);
    assert!(!line.contains("partial"), "{line}");
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, "x").unwrap();
    let out = run(
        dir.path(),
        &["backup", "--to", taken.to_str().unwrap()],
        &env,
    );
    one_clear_line(&out, &["taken.db", "already exists", "new file name"]);
}

#[test]
fn a_bad_setting_is_one_line_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["serve"],
        &[("QIWI_ALLOWED_IPS", "79.142.16.0/20,qiwi.ru")],
    );
    one_clear_line(&out, &["env QIWI_ALLOWED_IPS", "`qiwi.ru`"]);
}

/// Runs the binary to completion, killing it (and failing) if it runs past `limit`: a command
/// that should refuse at once must not hang the suite if it does not.
fn run_bounded(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    use std::io::Write;
    let mut c = cmd(dir);
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let _ = write!(child.stdin.take().unwrap(), "{stdin}");
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("`{}` was still running after 30 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_serve_on_one_database_refuses_and_safe_commands_work_beside_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Gateway::start(dir.path(), &[]);
    let pid = first.child.id();
    let db = first.db.to_str().unwrap().to_owned();
    let env = [
        ("DATABASE_PATH", db.as_str()),
        ("LISTEN_ADDR", "127.0.0.1:0"),
    ];

    let out = run_bounded(dir.path(), &["serve"], &env, "");
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("{db}.lock")), "{stderr}");
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");

    // Safe beside a running gateway.
    let backup = dir.path().join("copy.db");
    let out = run_bounded(
        dir.path(),
        &["backup", "--to", backup.to_str().unwrap()],
        &env,
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_bounded(dir.path(), &["resend", "--all"], &env, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run_bounded(dir.path(), &["check-config"], &env, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("(pid {pid}) is serving this database")),
        "{}",
        text(&out.stdout)
    );
    let addr = first.addr.to_string();
    let out = run_bounded(
        dir.path(),
        &["healthcheck"],
        &[("LISTEN_ADDR", addr.as_str())],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // These need the database to themselves, and say so.
    let out = run_bounded(dir.path(), &["migrate"], &env, "");
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("migrate needs the gateway stopped") && stderr.contains(".lock"),
        "{stderr}"
    );
    let out = run_bounded(
        dir.path(),
        &["admin", "set-password"],
        &env,
        "a long enough passphrase\n",
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("set-password needs the gateway stopped")
            && stderr.contains(&format!("pid {pid}")),
        "{stderr}"
    );
    assert_eq!(first.count("SELECT COUNT(*) FROM admin_password"), 1);

    // kill -9: the kernel releases the lock, so a new gateway starts on the same database.
    first.signal(Signal::KILL);
    first.wait_exit(Duration::from_secs(10));
    let second = Gateway::start(dir.path(), &[]);
    let out = run_bounded(
        dir.path(),
        &["healthcheck"],
        &[("LISTEN_ADDR", second.addr.to_string().as_str())],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn admin_set_password_refuses_while_admin_password_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    let out = run_bounded(
        dir.path(),
        &["admin", "set-password"],
        &[
            ("DATABASE_PATH", db.to_str().unwrap()),
            ("ADMIN_PASSWORD", "the configured password"),
        ],
        "a long enough passphrase\n",
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ADMIN_PASSWORD is set and wins"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing was stored");
}

#[test]
fn check_config_runs_the_checks_serve_runs_and_names_the_real_source() {
    let dir = tempfile::tempdir().unwrap();
    let env_db = dir.path().join("qiwi.db");
    let db = env_db.to_str().unwrap();
    // A TLS file that does not exist: serve refuses it, so check-config must too.
    let out = run_bounded(
        dir.path(),
        &["check-config"],
        &[
            ("DATABASE_PATH", db),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
            ("TLS_KEY_FILE", "/nonexistent/key.pem"),
        ],
        "",
    );
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("# FAILED: TLS certificate"), "{stdout}");
    assert!(!stdout.contains("every start-up check passed"), "{stdout}");
    assert!(text(&out.stderr).contains("/nonexistent/cert.pem"));

    // A database folder that cannot be created (its parent is a file).
    std::fs::write(dir.path().join("afile"), "x").unwrap();
    let bad_db = dir.path().join("afile/sub/qiwi.db");
    let out = run_bounded(
        dir.path(),
        &["check-config"],
        &[
            ("DATABASE_PATH", bad_db.to_str().unwrap()),
            ("LISTEN_ADDR", "127.0.0.1:0"),
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("# FAILED: database folder"),
        "{}",
        text(&out.stdout)
    );

    // An address another process holds is a note, not a failure; one that is not this
    // machine's cannot be bound and fails.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_addr = held.local_addr().unwrap().to_string();
    let out = run_bounded(
        dir.path(),
        &["check-config"],
        &[("DATABASE_PATH", db), ("LISTEN_ADDR", held_addr.as_str())],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("in use now"));
    let out = run_bounded(
        dir.path(),
        &["check-config"],
        &[("DATABASE_PATH", db), ("LISTEN_ADDR", "192.0.2.1:8080")],
        "",
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("192.0.2.1:8080"));
    assert!(!env_db.exists(), "check-config creates nothing");

    // A bad value in the file is reported as the file's.
    std::fs::write(dir.path().join("gw.toml"), "min_sum = \"abc\"\n").unwrap();
    let out = run_bounded(
        dir.path(),
        &["--config", "gw.toml", "check-config"],
        &[("DATABASE_PATH", db)],
        "",
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("invalid `min_sum` (file gw.toml)"),
        "{stderr}"
    );
    assert!(!stderr.contains("env MIN_SUM"), "{stderr}");

    for (var, value, wanted) in [
        (
            "LISTEN_ADDR",
            "localhost:8080",
            "a host name is not accepted",
        ),
        ("PAYMENTS_ENABLED", "1", "use true or false"),
        ("ADMIN_PASSWORD", "x", "at least 12"),
    ] {
        let out = run_bounded(
            dir.path(),
            &["check-config"],
            &[("DATABASE_PATH", db), (var, value)],
            "",
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{var}={value}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(wanted) && stderr.contains(&format!("env {var}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_start_that_fails_prints_no_admin_password() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qiwi.db");
    // No ADMIN_PASSWORD (first start would generate one) and a TLS file that does not exist.
    let out = run_bounded(
        dir.path(),
        &["serve"],
        &[
            ("DATABASE_PATH", db.to_str().unwrap()),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("TLS_CERT_FILE", "/nonexistent/cert.pem"),
            ("TLS_KEY_FILE", "/nonexistent/key.pem"),
        ],
        "",
    );
    assert!(!out.status.success());
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains("generated the admin password"), "{all}");
    let c = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = c
        .query_row("SELECT COUNT(*) FROM admin_password", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn a_password_with_leading_zeros_from_the_environment_is_used_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        &[
            ("HTTP_AUTH_USERNAME", "qiwi"),
            ("HTTP_AUTH_PASSWORD", "000000123456"),
        ],
    );
    let client = reqwest::Client::new();
    let status = |password: &'static str| {
        let req = client
            .get(gw.url("/payment?command=check&txn_id=1&account=acc&sum=1.00"))
            .basic_auth("qiwi", Some(password));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("000000123456").await, 200);
    assert_eq!(status("123456").await, 401);
}

#[tokio::test]
async fn credentials_in_urls_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Both backends refuse connections, so every error path that could quote a URL runs.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let hook = format!("http://hookuser:hookpass@127.0.0.1:{port}/hook?token=hooktok");
    let check = format!("http://chkuser:chkpass@127.0.0.1:{port}/check?token=chktok");
    const SECRETS: &[&str] = &[
        "hookuser", "hookpass", "hooktok", "chkuser", "chkpass", "chktok",
    ];
    let env = [
        ("QIWI_WEBHOOK_URL", hook.as_str()),
        ("QIWI_CHECK_URL", check.as_str()),
        ("WEBHOOK_INITIAL_DELAY_SECS", "1"),
    ];

    let out = run_bounded(dir.path(), &["check-config"], &env, "");
    let printed = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!(
            "\"http://***:***@127.0.0.1:{port}/hook?token=***\""
        )),
        "{printed}"
    );
    // An invalid URL's error message.
    for bad in [
        "ftp://hookuser:hookpass@h/x?token=hooktok",
        "http://hookuser:hookpass@[::1/x?token=hooktok",
    ] {
        let out = run_bounded(
            dir.path(),
            &["check-config"],
            &[("QIWI_WEBHOOK_URL", bad)],
            "",
        );
        let printed = text(&out.stdout) + &text(&out.stderr);
        assert!(!out.status.success());
        assert!(printed.contains("qiwi_webhook_url"), "{printed}");
        for s in SECRETS {
            assert!(!printed.contains(s), "{s} in {printed}");
        }
    }

    // The logs of a serving gateway whose check and webhook calls fail.
    let mut gw = Gateway::start(dir.path(), &env);
    let answer = reqwest::get(gw.url("/payment?command=check&txn_id=5&account=acc&sum=1.00"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result_of(&answer), Some("1"));
    let answer = reqwest::get(gw.url(&pay_query(6)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(result_of(&answer), Some("0"));
    let until = Instant::now() + Duration::from_secs(30);
    while gw.count("SELECT COUNT(*) FROM qiwi_webhook_attempt") == 0 {
        assert!(Instant::now() < until, "no webhook attempt was recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.signal(Signal::TERM);
    gw.wait_exit(Duration::from_secs(20));
    let logs = gw.logs.lock().unwrap().join("\n");
    assert!(logs.contains("127.0.0.1"), "the logs say where: {logs}");
    let errors: String = {
        let c = rusqlite::Connection::open(&gw.db).unwrap();
        let mut s = c
            .prepare("SELECT COALESCE(error, '') FROM qiwi_webhook_attempt")
            .unwrap();
        s.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for s in SECRETS {
        assert!(!logs.contains(s), "{s} in the logs: {logs}");
        assert!(!errors.contains(s), "{s} in a stored error: {errors}");
    }
}

/// The first ```python block after `marker` in `file`.
fn python_block(file: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let from = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {file}"));
    let block = &text[from..];
    let start = block.find("```python\n").expect("a python block") + "```python\n".len();
    let end = block[start..].find("```").unwrap();
    block[start..start + end].to_owned()
}

#[test]
fn the_readme_and_docs_webhooks_give_one_verify_recipe_with_a_timestamp_tolerance() {
    let readme = python_block("README.md", "## Webhook");
    let docs = python_block("docs/webhooks.md", "## Verifying the signature");
    assert_eq!(readme, docs);
    assert!(readme.contains("tolerance") && readme.contains("webhook-timestamp"));
    // No pointer outside the repository for the protocol; the summary it needs is here.
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(!text.contains("shared/spec"));
    assert!(text.contains("(docs/protocol.md)"));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/protocol.md")
            .is_file()
    );
    assert!(text.contains("command=pay&txn_id=1234567&txn_date="));
}

/// gateway.env.example's placeholder HTTP_AUTH_PASSWORD, left in place, is warned about at
/// start (everyone who read the example knows it); a password of one's own is not.
#[test]
fn the_example_password_left_in_place_is_warned_about_at_start() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.env.example"))
            .unwrap();
    let placeholder = example
        .lines()
        .find_map(|l| l.strip_prefix("HTTP_AUTH_PASSWORD="))
        .expect("gateway.env.example sets HTTP_AUTH_PASSWORD")
        .to_owned();
    let warned = |password: &str| {
        let dir = tempfile::tempdir().unwrap();
        let g = Gateway::start(
            dir.path(),
            &[
                ("HTTP_AUTH_USERNAME", "qiwi"),
                ("HTTP_AUTH_PASSWORD", password),
            ],
        );
        let logs = g.logs.lock().unwrap().clone();
        logs.iter()
            .any(|l| l.contains("HTTP_AUTH_PASSWORD is still gateway.env.example's placeholder"))
    };
    assert!(warned(&placeholder));
    assert!(!warned("a-long-random-password-of-our-own"));
}
