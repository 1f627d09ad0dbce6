//! How fast a registry reconciles: seeds 1,000,000 payments (override with ROWS=n), writes a
//! registry of as many lines (a few of each difference among them), and runs the same
//! reconciliation as `qiwi-gateway reconcile FILE` and the admin page (read pool, batched
//! index lookups, report stored). Meanwhile a task stores a payment row every 10 ms through the
//! writer, as pays do, and its slowest commit is printed: reconciliation must not hold pays up.
//!
//! Run: `cargo bench --bench reconcile`. Prints the seconds, the process's peak resident memory
//! and the concurrent writes' median and slowest latency.

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

use std::io::Write;
use std::time::{Duration, Instant};

use qiwi_gateway::db::Db;
use qiwi_gateway::reconcile::{self, Source};
use rusqlite::{Connection, params};

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".to_owned(),
            |kb| format!("{:.0} MiB", kb as f64 / 1024.0),
        )
}

fn main() {
    let rows: u64 = std::env::var("ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qiwi.db");
    let db = Db::open(&path).unwrap();

    let t = Instant::now();
    {
        let mut c = Connection::open(&path).unwrap();
        let tx = c.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO qiwi_transaction
                         (account, code, sum, status, created_at, sum_minor, txn_date)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
                )
                .unwrap();
            for i in 0..rows {
                let minor = 100 + (i % 100_000) as i64;
                // Two Moscow days, seconds apart.
                let day = 1 + i * 2 / rows;
                let secs = i % 86_400;
                let txn_date = format!(
                    "202403{day:02}{:02}{:02}{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                );
                stmt.execute(params![
                    format!("7900{:07}", i % 50_000),
                    (10_000_000 + i).to_string(),
                    minor as f64 / 100.0,
                    "2024-03-01 00:00:00",
                    minor,
                    txn_date
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    eprintln!(
        "seeded {rows} payments in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The registry: every payment, except every 100,000th one missing from the file and a
    // few lines QIWI has that we do not, another sum, another account.
    let file = dir.path().join("registry.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "txn_id;txn_date;account;sum").unwrap();
        for i in 0..rows {
            if i % 100_000 == 7 {
                continue;
            }
            let mut minor = 100 + (i % 100_000) as i64;
            let mut account = format!("7900{:07}", i % 50_000);
            if i % 100_000 == 11 {
                minor += 1;
            }
            if i % 100_000 == 13 {
                account.push('9');
            }
            let day = 1 + i * 2 / rows;
            let secs = i % 86_400;
            writeln!(
                w,
                "{};{day:02}.03.2024 {:02}:{:02}:{:02};{account};{},{:02}",
                10_000_000 + i,
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                minor / 100,
                minor % 100
            )
            .unwrap();
        }
        for j in 0..3 {
            writeln!(w, "{};02.03.2024 12:00:00;79990000000;1,00", 90_000_000 + j).unwrap();
        }
    }
    let size = std::fs::metadata(&file).unwrap().len();
    eprintln!("registry: {rows} lines, {} MiB", size / (1024 * 1024));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Concurrent writes through the writer, as pays are stored.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writes = tokio::spawn({
            let (db, stop) = (db.clone(), stop.clone());
            async move {
                let mut lat = Vec::new();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let t = Instant::now();
                    db.writer()
                        .write(move |c| {
                            c.execute(
                                "INSERT INTO qiwi_transaction
                                     (account, code, sum, created_at, sum_minor, txn_date)
                                 VALUES ('a', ?1, 1.0, '2024-04-01 00:00:00', 100, '20240401000000')",
                                [format!("5{n:012}")],
                            )?;
                            Ok(())
                        })
                        .await
                        .unwrap();
                    lat.push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                lat
            }
        });
        let t = Instant::now();
        let (_, _, report) = reconcile::run(&db, Source::File(file.clone()), "registry.csv".into(), None)
            .await
            .unwrap();
        let elapsed = t.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut lat = writes.await.unwrap();
        lat.sort();
        let s = &report.summary;
        println!(
            "reconcile: {rows} registry lines against {rows} payments in {:.2} s \
             ({} matched, {}); peak RSS {}",
            elapsed.as_secs_f64(),
            s.matched_count,
            s.verdict(),
            peak_rss_mib()
        );
        if !lat.is_empty() {
            println!(
                "concurrent writes during it: {} , median {:.2} ms, slowest {:.2} ms",
                lat.len(),
                lat[lat.len() / 2].as_secs_f64() * 1000.0,
                lat[lat.len() - 1].as_secs_f64() * 1000.0
            );
        }
    });
}
