//! How fast the admin list pages are on a big database: seeds 1,000,000 request-log rows and
//! 1,000,000 transactions (override with ROWS=n), then 25,000 refused requests as the newest
//! log rows (the worst case of a filter on a usual value: GET, 200, result 0), starts the real
//! gateway on loopback, logs in, and times each page (first, deep, filtered) over HTTP,
//! rendering included.
//!
//! Run: `cargo bench --bench admin_pages`. Prints one line per page: the median and the
//! slowest of RUNS requests after a warm-up, in milliseconds, measured by the client (so the
//! server-side time is at most that).
//!
//! With `DB=path` it seeds nothing and times the pages on that existing database (e.g. one
//! written by `examples/seed.rs`, as `bench/run scale` does); the account, txn_id and day the
//! filtered pages ask for are then those of the middle row, and the deep pages start at id
//! 1000.

#![allow(clippy::unwrap_used)] // a test/bench may unwrap: a panic is its failure report

use std::time::{Duration, Instant};

use qiwi_gateway::app::{self, AppState};
use qiwi_gateway::config::{Config, Secret};
use rusqlite::{Connection, params};

const PASSWORD: &str = "bench-password";
const RUNS: usize = 21;
/// Seconds between two seeded rows: a million rows span about a year.
const SPACING: i64 = 31;
/// Distinct accounts.
const ACCOUNTS: u64 = 20_000;
/// Undelivered rows at the newest end (a backlog) and failing rows scattered over the year.
const BACKLOG: usize = 2_000;
const FAILING_EVERY: usize = 2_000;
/// Refused requests logged after the seeded year, newest of all (more than the scan budget).
const BURST: usize = 25_000;

/// A small deterministic generator: the same data on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// When seeded row `i` of `rows` was made: the newest one a minute ago, so the dashboard's
/// "today", "7 days" and "30 days" count real numbers of rows.
fn time_at(i: usize, rows: usize) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now() - chrono::TimeDelta::minutes(1);
    now - chrono::TimeDelta::seconds((rows - i) as i64 * SPACING)
}

fn fmt(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn account(n: u64) -> String {
    format!("7900{:07}", n % ACCOUNTS)
}

fn seed(path: &std::path::Path, rows: usize) {
    let mut c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    c.pragma_update(None, "cache_size", -262_144).unwrap();
    let started = Instant::now();
    let tx = c.transaction().unwrap();
    {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut txn = tx
            .prepare(
                "INSERT INTO qiwi_transaction
                     (account, code, sum, status, created_at, sum_minor, txn_date, extra,
                      delivery_due_ms, attempts, last_error, last_attempt_at, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .unwrap();
        let mut log = tx
            .prepare(
                "INSERT INTO qiwi_http_log
                     (ip, url, method, headers, body, created_at, status, response, txn_id, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .unwrap();
        for i in 0..rows {
            let r = rng.next();
            let at = time_at(i, rows);
            let created = fmt(at);
            let code = (10_000_000 + i).to_string();
            let acc = account(r >> 20);
            let minor = (100 + (r % 499_900)) as i64;
            let sum = format!("{}.{:02}", minor / 100, minor % 100);
            let txn_date = (at + chrono::TimeDelta::hours(3))
                .format("%Y%m%d%H%M%S")
                .to_string();
            let backlog = i >= rows.saturating_sub(BACKLOG);
            let failing = !backlog && i % FAILING_EVERY == 7;
            let (status, due, attempts, error, last_at, delivered) = if backlog {
                (0, Some(at.timestamp_millis()), 0, None, None, None)
            } else if failing {
                let last = fmt(at + chrono::TimeDelta::minutes(30));
                (
                    0,
                    Some(at.timestamp_millis() + 3_600_000),
                    6,
                    Some("status: 503".to_owned()),
                    Some(last),
                    None,
                )
            } else {
                let d = fmt(at + chrono::TimeDelta::seconds(1));
                (1, None, 1, None, Some(d.clone()), Some(d))
            };
            txn.execute(params![
                acc,
                code,
                minor as f64 / 100.0,
                status,
                created,
                minor,
                txn_date,
                r#"{"prv_id":"4711","ccy":"RUB"}"#,
                due,
                attempts,
                error,
                last_at,
                delivered
            ])
            .unwrap();

            let post = i % 50 == 0;
            let unauthorized = i % 100 == 1;
            let query = format!(
                "command=pay&txn_id={code}&account={acc}&sum={sum}&txn_date={txn_date}&prv_id=4711"
            );
            let (url, body) = if post {
                ("/payment".to_owned(), query)
            } else {
                (format!("/payment?{query}"), String::new())
            };
            let ip = format!("91.232.230.{}", r % 40 + 1);
            let response = if unauthorized {
                "authentication required\n".to_owned()
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>\n<osmp_txn_id>{code}\
                     </osmp_txn_id>\n<prv_txn>{}</prv_txn>\n<sum>{sum}</sum>\n<result>0</result>\n\
                     <comment>OK</comment>\n</response>\n",
                    i + 1
                )
            };
            log.execute(params![
                ip,
                url,
                if post { "POST" } else { "GET" },
                r#"{"host":"gw.example.ru","user-agent":"QIWI/1.0","authorization":"Basic qiwi:***","accept":"*/*"}"#,
                body,
                created,
                if unauthorized { 401 } else { 200 },
                response,
                (!unauthorized).then_some(code.clone()),
                (!unauthorized).then_some(0)
            ])
            .unwrap();
        }
    }
    // The newest rows: a flood of refused POSTs (QIWI still calling with an old password, or
    // a scanner), so the usual values (GET, 200, result 0) are absent from the newest
    // BURST rows and a filter on them walks its whole scan budget: the log's worst case since
    // their indexes keep only the rare values (migration 0010).
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO qiwi_http_log (ip, url, method, headers, body, created_at, status, response)
         SELECT '203.0.113.9', '/payment', 'POST', '{}', 'command=pay&txn_id=' || i, ?2, 401,
                'authentication required' || char(10)
         FROM n",
        params![BURST as i64, fmt(chrono::Utc::now())],
    )
    .unwrap();
    tx.commit().unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    eprintln!(
        "seeded {rows} transactions and {rows} log rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn cookie_value(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}

async fn login(client: &reqwest::Client, base: &str) -> String {
    let resp = client
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_value(&resp, "qg_login_csrf");
    let html = resp.text().await.unwrap();
    let token = regex::Regex::new(r#"name="csrf" value="([^"]*)""#)
        .unwrap()
        .captures(&html)
        .unwrap()[1]
        .to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", PASSWORD),
        ])
        .finish();
    let resp = client
        .post(format!("{base}/admin/login"))
        .header("cookie", format!("qg_login_csrf={login_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "login failed");
    cookie_value(&resp, "qg_session")
}

/// Times `RUNS` requests of `path` (after one warm-up); returns (median, max, rows listed).
async fn time_page(
    client: &reqwest::Client,
    base: &str,
    session: &str,
    path: &str,
) -> (f64, f64, usize) {
    let get = || async {
        let resp = client
            .get(format!("{base}{path}"))
            .header("cookie", format!("qg_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.unwrap()
    };
    let html = get().await;
    let rows = html.matches("<tr>").count().saturating_sub(1);
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        get().await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[RUNS / 2], times[RUNS - 1], rows)
}

fn main() {
    let existing = std::env::var_os("DB").map(std::path::PathBuf::from);
    let mut rows: usize = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen_addr = "127.0.0.1:0".parse().unwrap();
    config.ops.database_path = existing
        .clone()
        .unwrap_or_else(|| dir.path().join("bench.db"));
    config.admin.password = Some(Secret(PASSWORD.into()));
    // The seeded year of log rows stays: no retention pruning while timing.
    config.ops.log_retention = None;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let state = AppState::new(config.clone()).unwrap();
        let path = config.ops.database_path.clone();
        let (some_account, some_code, mid_day, mid) = if existing.is_some() {
            let c = Connection::open(&path).unwrap();
            rows = c
                .query_row("SELECT count(*) FROM qiwi_transaction", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap() as usize;
            let mid = rows / 2;
            let (account, code, day): (String, String, String) = c
                .query_row(
                    "SELECT account, code, substr(created_at, 1, 10) FROM qiwi_transaction
                     WHERE id >= ?1 ORDER BY id LIMIT 1",
                    [mid as i64 + 1],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            (account, code, day, mid)
        } else {
            tokio::task::spawn_blocking(move || seed(&path, rows))
                .await
                .unwrap();
            let mid = rows / 2;
            (
                account(12_345),
                (10_000_000 + mid).to_string(),
                time_at(mid, rows).format("%Y-%m-%d").to_string(),
                mid,
            )
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = app::start(state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let base = format!("http://{}", running.addr);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let session = login(&client, &base).await;

        let deep_txn = 1_000; // rows older than id 1000: the last pages
        let pages: Vec<(&str, String)> = vec![
            ("dashboard", "/admin".into()),
            ("transactions: first page", "/admin/transactions".into()),
            (
                "transactions: deep page",
                format!("/admin/transactions?after={deep_txn}"),
            ),
            (
                "transactions: newer from deep",
                format!("/admin/transactions?before={deep_txn}"),
            ),
            (
                "transactions: state=failing",
                "/admin/transactions?state=failing".into(),
            ),
            (
                "transactions: state=undelivered",
                "/admin/transactions?state=undelivered".into(),
            ),
            (
                "transactions: state=delivered, deep",
                format!("/admin/transactions?state=delivered&after={deep_txn}"),
            ),
            (
                "transactions: account",
                format!("/admin/transactions?account={some_account}"),
            ),
            (
                "transactions: txn_id",
                format!("/admin/transactions?code={some_code}"),
            ),
            (
                "transactions: one day",
                format!("/admin/transactions?from={mid_day}&to={mid_day}"),
            ),
            (
                "transactions: sum 100-200",
                "/admin/transactions?min=100&max=200".into(),
            ),
            (
                "transactions: sum range, no match",
                "/admin/transactions?min=4999.99&max=4999.99".into(),
            ),
            (
                "transactions: account + sum + day",
                format!("/admin/transactions?account={some_account}&min=10&from={mid_day}"),
            ),
            (
                "transaction detail",
                format!("/admin/transactions/{}", mid + 1),
            ),
            (
                "signature debugger",
                format!("/admin/transactions/{}/signature", mid + 1),
            ),
            (
                "transactions: account prefix, wide (7900)",
                "/admin/transactions?account=7900".into(),
            ),
            (
                "transactions: account prefix, narrow",
                format!("/admin/transactions?account={}", &some_account[..9]),
            ),
            ("audit", "/admin/audit".into()),
            ("log: result=0", "/admin/log?result=0".into()),
            ("log: first page", "/admin/log".into()),
            ("log: deep page", format!("/admin/log?after={deep_txn}")),
            ("log: method=POST", "/admin/log?method=POST".into()),
            ("log: status=401", "/admin/log?status=401".into()),
            // The usual values, whose indexes hold only the other rows (migration 0010); without
            // DB= the newest BURST rows lack them: the page walks its whole scan budget.
            ("log: status=200 (usual)", "/admin/log?status=200".into()),
            ("log: method=GET (usual)", "/admin/log?method=GET".into()),
            // Values no row holds: one seek into an index of the rare values.
            ("log: status=500, no match", "/admin/log?status=500".into()),
            ("log: method=PUT, no match", "/admin/log?method=PUT".into()),
            ("log: result=5, no match", "/admin/log?result=5".into()),
            ("log: ip", "/admin/log?ip=91.232.230.7".into()),
            (
                "log: ip + status, deep",
                format!("/admin/log?ip=91.232.230.7&status=200&after={deep_txn}"),
            ),
            ("log: txn_id", format!("/admin/log?txn={some_code}")),
            (
                "log: one day",
                format!("/admin/log?from={mid_day}&to={mid_day}"),
            ),
            ("log: text, common", "/admin/log?q=prv_id%3D4711".into()),
            (
                "log: text, rare",
                format!("/admin/log?q=account%3D{some_account}"),
            ),
            ("log: text, no match", "/admin/log?q=no-such-text".into()),
            ("log detail", format!("/admin/log/{}", mid + 1)),
        ];
        println!("admin pages with {rows} transactions and {rows} log rows ({RUNS} runs each)");
        println!(
            "{:<40} {:>10} {:>10} {:>6}",
            "page", "median ms", "max ms", "rows"
        );
        let mut worst: f64 = 0.0;
        for (name, path) in &pages {
            let (median, max, listed) = time_page(&client, &base, &session, path).await;
            worst = worst.max(median);
            println!("{name:<40} {median:>10.2} {max:>10.2} {listed:>6}");
        }
        println!("slowest median: {worst:.2} ms");
        let _ = stop.send(());
        running.task.await.unwrap().unwrap();
    });
}
