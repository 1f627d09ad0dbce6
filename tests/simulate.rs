//! `qiwi-gateway simulate` end to end: the real binary plays QIWI against the real gateway
//! process (it must pass) and against a local server that breaks the protocol (it must fail).

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

const BIN: &str = env!("CARGO_BIN_EXE_qiwi-gateway");

/// The binary with an empty environment, run in `dir`.
fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear().current_dir(dir);
    c
}

/// A gateway process on 127.0.0.1 with Basic auth; killed when dropped.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Gateway {
    fn start(dir: &Path) -> Gateway {
        let mut child = cmd(dir)
            .env("DATABASE_PATH", dir.join("qiwi.db"))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("HTTP_AUTH_USERNAME", "qiwi")
            .env("HTTP_AUTH_PASSWORD", "pa55-w0rd-secret")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let addr = common::listening_addr(&mut child, Duration::from_secs(20), drop);
        Gateway { child, addr }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn simulate(dir: &Path, url: &str, extra: &[&str]) -> (Output, String, String) {
    let out = cmd(dir)
        .args(["simulate", "--url", url, "--timeout-secs", "10"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn simulate_passes_against_the_gateway_and_never_prints_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path());
    let url = format!("http://qiwi:pa55-w0rd-secret@{}/payment", gw.addr);
    let (out, stdout, stderr) = simulate(
        dir.path(),
        &url,
        &[
            "--account",
            "79001234567",
            "--sum",
            "10.5",
            "--txn-id",
            "4242",
        ],
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("all 6 answers follow the protocol"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("ok  ").count(), 6, "{stdout}");
    assert!(stdout.contains("qiwi:***@"), "{stdout}");
    assert!(!stdout.contains("pa55") && !stderr.contains("pa55"));
    // It really paid: one row, the conflicting repeat changed nothing.
    let conn = rusqlite::Connection::open(dir.path().join("qiwi.db")).unwrap();
    let (n, minor): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(sum_minor) FROM qiwi_transaction WHERE code = '4242'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, minor), (1, 1050));

    // The wrong password is a deviation (HTTP 401), reported without the password.
    let bad = format!("http://qiwi:wrong-secret@{}/payment", gw.addr);
    let (out, stdout, stderr) = simulate(dir.path(), &bad, &[]);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("HTTP 401"), "{stdout}");
    assert!(!stdout.contains("wrong-secret") && !stderr.contains("wrong-secret"));
    drop(gw);

    // The long commands report progress as plain lines on a stderr that is not a terminal.
    let env = [("DATABASE_PATH", dir.path().join("qiwi.db"))];
    let run = |args: &[&str]| {
        let out = cmd(dir.path())
            .envs(env.clone())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&["resend", "--all"]);
    assert!(stderr.contains("resend: done, 1 payments in "), "{stderr}");
    let stderr = run(&["backup", "--to", "copy.db"]);
    assert!(stderr.contains("backup: done, "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes: {stderr}");
    let fresh = [("DATABASE_PATH", dir.path().join("fresh.db"))];
    let out = cmd(dir.path()).envs(fresh).arg("migrate").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("migrate: done, "), "{stderr}");
}

/// A provider that gets the protocol wrong in the usual ways: HTML content type, a new
/// `prv_txn` on every pay, 0 for everything (conflicts and malformed requests included).
async fn wrong_provider() -> SocketAddr {
    let next = Arc::new(AtomicU64::new(1));
    let app = Router::new().route(
        "/payment",
        get(move |q: axum::extract::RawQuery| {
            let next = next.clone();
            async move {
                let q = q.0.unwrap_or_default();
                let txn = q
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("txn_id="))
                    .unwrap_or("")
                    .to_owned();
                let prv = next.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    "<?xml version=\"1.0\"?><response><osmp_txn_id>{txn}</osmp_txn_id>\
                     <prv_txn>{prv}</prv_txn><sum>1</sum><result>0</result></response>"
                );
                ([("content-type", "text/html")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn simulate_fails_against_a_provider_that_breaks_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let addr = wrong_provider().await;
    let url = format!("http://u:hidden-pass@{addr}/payment");
    let d = dir.path().to_owned();
    let (out, stdout, stderr) = tokio::task::spawn_blocking(move || simulate(&d, &url, &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for finding in [
        "Content-Type is \"text/html\"",
        "prv_txn changed from 2 to 3",
        "result 0: a txn_id reused with another sum must answer 300",
        "result 0: a malformed request must answer 300",
        "<sum> is Some(\"1\"), not the sum paid with two decimals (1.00)",
    ] {
        assert!(stdout.contains(finding), "{finding} missing in:\n{stdout}");
    }
    assert!(stdout.contains("6 of 6 answers deviate"), "{stdout}");
    assert!(
        stderr.contains("deviates from the QIWI protocol"),
        "{stderr}"
    );
    assert!(!stdout.contains("hidden-pass") && !stderr.contains("hidden-pass"));

    // Nothing listening: every exchange is a deviation, not a crash.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/payment", gone.local_addr().unwrap());
    drop(gone);
    let d = dir.path().to_owned();
    let (out, stdout, _) = tokio::task::spawn_blocking(move || simulate(&d, &url, &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("no answer"), "{stdout}");
}
