//! What one durable pay costs: runs a fixed batch of unique `pay` requests through the real
//! router (payment guard, request log, handler, writer, SQLite) on a fresh temporary database
//! and prints, per pay, the bytes appended to the WAL and the bytes the database file grew by,
//! with the growth of every table and index (SQLite's `dbstat`).
//!
//! `bench/run cost` runs it twice under valgrind's callgrind (which counts the instructions
//! of every thread and gives the same count from run to run on a noisy machine) with two batch
//! sizes, and divides the difference by the difference in pays: start-up is left out.
//!
//!   pay_cost [PAYS] [CONCURRENCY] [count|rate]     (defaults: 2000 pays, 1 at a time)
//!
//! With `count` (as under callgrind) it skips the byte figures, whose `dbstat` walk would
//! add instructions that grow with the database. With `rate` it skips them too and runs on
//! tokio's multi-threaded runtime, as the gateway does (one worker per core), so `seconds`
//! is the in-process bound that `bench/run http` prints beside the HTTP ceiling; the other
//! modes run one runtime thread (plus the writer's), whose instruction counts repeat best.
//!
//! With CONCURRENCY 1 every pay is its own commit (the cost of a lone pay, fsync included);
//! with 64 the writer groups them as it does under load. Output: `key value` lines.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use qiwi_gateway::app::{self, AppState};
use qiwi_gateway::config::Config;
use rusqlite::Connection;
use tower::ServiceExt;

/// The first txn_id; pays count up from it (QIWI's numbers grow).
const FIRST_TXN: u64 = 5_000_000_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let pays: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let conc: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let mode = args.next();
    let bytes = mode.is_none();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("cost.db");
    let mut config = Config::default();
    config.server.listen_addr = "127.0.0.1:0".parse().expect("a literal address");
    config.ops.database_path = path.clone();
    config.ops.log_retention = None;
    let rt = if mode.as_deref() == Some("rate") {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .expect("a tokio runtime");
    rt.block_on(async {
        let state = AppState::new(config).expect("the gateway's state");
        // The WAL only grows while paying: its size afterwards is what the pays wrote.
        state.db.set_background_checkpoints(false);
        let before = if bytes { sizes(&path) } else { Vec::new() };
        let router = app::router(state.clone());
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..conc {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0u64;
                let mut i = t;
                while i < pays {
                    ok += u64::from(pay(&router, FIRST_TXN + i).await);
                    i += conc;
                }
                ok
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.expect("a pay task");
        }
        let secs = started.elapsed().as_secs_f64();
        let wal = wal_bytes(&path);
        let after = if bytes { sizes(&path) } else { Vec::new() };
        let n = pays as f64;
        println!("pays {pays}");
        println!("concurrency {conc}");
        println!("answered_0 {ok}");
        println!("seconds {secs:.3}");
        println!("wal_bytes_per_pay {:.0}", wal as f64 / n);
        let total = |s: &[(String, i64)]| s.iter().map(|(_, b)| b).sum::<i64>();
        println!(
            "db_bytes_per_pay {:.0}",
            (total(&after) - total(&before)) as f64 / n
        );
        for (name, bytes) in &after {
            let was = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, b)| *b);
            if bytes != &was {
                println!("btree {name} {:.1}", (bytes - was) as f64 / n);
            }
        }
        assert_eq!(ok, pays, "every pay must be answered 0");
    });
}

/// Sends one pay through the router; true when it was answered `<result>0</result>`.
async fn pay(router: &axum::Router, txn: u64) -> bool {
    let req = Request::builder()
        .uri(format!(
            "/payment?command=pay&txn_id={txn}&account=79001234567&sum=10.45\
             &txn_date=20240101120000"
        ))
        .header("host", "127.0.0.1:8080")
        .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
        .body(Body::empty())
        .expect("a valid request");
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .expect("the answer");
    body.windows(18).any(|w| w == b"<result>0</result>")
}

/// The WAL's size in bytes (0 when there is none).
fn wal_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Checkpoints the WAL into the file, then returns the bytes of every table and index.
fn sizes(db: &Path) -> Vec<(String, i64)> {
    let c = Connection::open(db).expect("a second connection");
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("a checkpoint");
    let mut st = c
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY name")
        .expect("dbstat (SQLITE_ENABLE_DBSTAT_VTAB)");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("dbstat rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("dbstat rows")
}
