//! The seeding tool: writes a realistic database for measuring the gateway at scale
//! (`qiwi_gateway::db::seed`): 10,000,000 payments over 3 years and 10,000,000 request-log
//! rows within the 90-day retention window unless told otherwise.
//!
//!   seed PATH [TRANSACTIONS] [LOG_ROWS]
//!
//! Prints what it wrote, how long it took and the file's size. Refuses an existing PATH.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: seed PATH [TRANSACTIONS] [LOG_ROWS]")?;
    let mut spec = qiwi_gateway::db::seed::Spec::default();
    if let Some(n) = args.next() {
        spec.transactions = n.parse()?;
    }
    if let Some(n) = args.next() {
        spec.log_rows = n.parse()?;
    }
    let r = qiwi_gateway::db::seed::seed(std::path::Path::new(&path), &spec)?;
    println!(
        "seeded {} transactions ({} undelivered), {} webhook attempts, {} log rows in {:.1} s; \
         file {:.0} MiB",
        r.transactions,
        r.undelivered,
        r.attempts,
        r.log_rows,
        r.millis as f64 / 1000.0,
        r.bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}
