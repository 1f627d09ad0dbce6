//! `import-original` against a real PostgreSQL (Debian's `postgresql` package: `initdb` and
//! `pg_ctl` on a temporary data folder and a loopback port, as `nobody` when run as root since
//! PostgreSQL refuses root) holding the original container's tables, then the real gateway
//! process on the imported database with a local axum receiver as the merchant's backend.

#![allow(clippy::unwrap_used)] // a test may unwrap: a panic is its failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_qiwi-gateway");
const SUPERUSER_PASSWORD: &str = "super-secret-pg";
/// The original container's PostgreSQL user and password (`PG_USER`, `PG_PASSWORD`).
const USER: &str = "qiwi";
const PASSWORD: &str = "orig-Secret-4711";

/// A PostgreSQL server of our own; stopped when dropped.
struct Pg {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// The folder of `initdb`/`pg_ctl`: the newest /usr/lib/postgresql/N/bin, or the PATH's.
/// Missing binaries fail the test with the fix: nothing is skipped.
fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(b) = found.pop() {
        return b;
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(p) = on_path
        && let Some(dir) = p.parent()
        && dir.join("initdb").exists()
    {
        return dir.to_owned();
    }
    panic!(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: run \
         `apt-get install postgresql` (scripts/test installs it on Debian/Ubuntu)"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and no memory effects.
    rustix::process::geteuid().is_root()
}

/// `program args` as the server's user: `nobody` when we are root, else ourselves.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn check(o: Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Pg {
    fn start() -> Pg {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        if is_root() {
            let o = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(dir.path())
                .output()
                .unwrap();
            check(o, "chown");
        }
        let o = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(dir.path())
            .output()
            .unwrap();
        check(o, "initdb");
        let port = free_port();
        let o = as_server_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off",
                dir.path().display()
            ))
            .arg("start")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        check(o, "pg_ctl start");
        Pg {
            _dir: dir,
            data,
            bin,
            port,
        }
    }

    fn client(&self, user: &str, password: &str, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// A new database owned by the original's user, with `sql` run in it as that user.
    fn database(&self, name: &str, sql: &str) -> postgres::Client {
        let mut admin = self.client("postgres", SUPERUSER_PASSWORD, "postgres");
        admin
            .batch_execute(&format!(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{USER}') THEN
                     CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}';
                   END IF;
                 END $$;"
            ))
            .unwrap();
        // Alone: CREATE DATABASE cannot run inside the implicit transaction of a batch.
        admin
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {USER}"))
            .unwrap();
        let mut c = self.client(USER, PASSWORD, name);
        c.batch_execute(sql).unwrap();
        c
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The original's tables as its documentation lists their columns (`qiwi_transaction`: id,
/// account, code, sum float, status; `qiwi_http_log`: id, ip, url, method, headers json, body,
/// created_at), with the `created_at`/`updated_at` pair its framework adds and one column of
/// another kind (`terminal`), which the import keeps in `extra`.
const ORIGINAL_TABLES: &str = "
    CREATE TABLE qiwi_transaction (
        id bigserial PRIMARY KEY,
        account varchar(255) NOT NULL,
        code varchar(255) NOT NULL UNIQUE,
        sum double precision NOT NULL,
        status integer NOT NULL DEFAULT 0,
        terminal varchar(64),
        created_at timestamp without time zone,
        updated_at timestamp without time zone
    );
    CREATE TABLE qiwi_http_log (
        id bigserial PRIMARY KEY,
        ip varchar(255) NOT NULL,
        url text NOT NULL,
        method varchar(16) NOT NULL,
        headers json,
        body text,
        created_at timestamp without time zone NOT NULL
    );";

/// Runs the binary with an empty environment plus `env`.
fn gateway_cmd(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::new(BIN);
    c.env_clear().current_dir(dir).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn pg_env(pg: &Pg, db: &str) -> Vec<(&'static str, String)> {
    vec![
        // PG_HOST names a pooler the import does not need: PG_REAL_HOST wins.
        ("PG_HOST", "pgbouncer.invalid".into()),
        ("PG_REAL_HOST", "127.0.0.1".into()),
        ("PG_PORT", pg.port.to_string()),
        ("PG_DATABASE", db.into()),
        ("PG_USER", USER.into()),
        ("PG_PASSWORD", PASSWORD.into()),
    ]
}

fn import(dir: &Path, db: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
    let mut env = env.to_vec();
    env.push(("DATABASE_PATH", db.display().to_string()));
    let mut all = vec!["import-original"];
    all.extend_from_slice(args);
    gateway_cmd(dir, &all, &env)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sqlite(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db).unwrap()
}

fn one<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    sqlite(db).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A fingerprint of everything the original's tables hold: the import must not change it.
fn fingerprint(c: &mut postgres::Client) -> String {
    c.query_one(
        "SELECT (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '')
                 FROM qiwi_transaction t)
             || '|' ||
                (SELECT count(*) || ':' || coalesce(md5(string_agg(l::text, ',' ORDER BY id)), '')
                 FROM qiwi_http_log l)",
        &[],
    )
    .unwrap()
    .get(0)
}

/// The real gateway serving `db` on a free loopback port; killed when dropped.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Gateway {
    fn start(dir: &Path, db: &Path, webhook_url: &str) -> Gateway {
        let mut c = Command::new(BIN);
        c.env_clear()
            .current_dir(dir)
            .env("DATABASE_PATH", db)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("QIWI_WEBHOOK_URL", webhook_url)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().unwrap();
        let addr = common::listening_addr(&mut child, Duration::from_secs(30), drop);
        Gateway { child, addr }
    }

    /// A `pay`; returns (result, prv_txn).
    async fn pay(&self, txn_id: &str, account: &str, sum: &str) -> (String, Option<String>) {
        let url = format!(
            "http://{}/payment?command=pay&txn_id={txn_id}&txn_date=20240201120000&account={account}&sum={sum}",
            self.addr
        );
        let body = reqwest::get(url).await.unwrap().text().await.unwrap();
        let field = |name: &str| {
            body.split(&format!("<{name}>"))
                .nth(1)?
                .split(&format!("</{name}>"))
                .next()
                .map(str::to_owned)
        };
        (
            field("result").unwrap_or_else(|| body.clone()),
            field("prv_txn"),
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A merchant backend recording every webhook body; answers 200.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

fn received_ids(got: &Arc<Mutex<Vec<serde_json::Value>>>) -> Vec<String> {
    let mut ids: Vec<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One PostgreSQL server for every scenario (starting one costs seconds); each scenario has
/// its own databases on both sides.
#[test]
fn import_original_against_a_real_postgresql() {
    let pg = Pg::start();
    let dir = tempfile::tempdir().unwrap();
    // The postgres client runs its own runtime: the async parts get theirs, not the test.
    let rt = tokio::runtime::Runtime::new().unwrap();
    imported_payments_answer_their_old_prv_txn_and_deliver_only_status_0(&rt, &pg, dir.path());
    a_second_import_is_refused_and_merge_reports_conflicts(dir.path(), &pg);
    an_older_schema_numeric_sums_and_zoned_times_with_no_deliver(&pg, dir.path());
    rows_that_cannot_be_imported_leave_nothing_imported(&pg, dir.path());
    a_wrong_password_is_one_line_without_the_password(&pg, dir.path());
}

fn imported_payments_answer_their_old_prv_txn_and_deliver_only_status_0(
    rt: &tokio::runtime::Runtime,
    pg: &Pg,
    dir: &Path,
) {
    let mut orig = pg.database(
        "orig_main",
        &format!(
            "{ORIGINAL_TABLES}
            INSERT INTO qiwi_transaction (id, account, code, sum, status, terminal, created_at, updated_at) VALUES
              (5,  'acc1', '1001',    10.45, 1, 'T-1', '2024-01-31 20:00:00', '2024-01-31 20:00:05'),
              (7,  'acc2', '1002',    0.125, 0, NULL,  '2024-01-31 20:10:00', NULL),
              (9,  'acc3', '0001003', 100,   0, 'T-9', '2024-01-31 20:20:00', NULL),
              (12, 'acc4', '1004',    45,    1, NULL,  '2024-01-31 20:30:00', NULL);
            SELECT setval('qiwi_transaction_id_seq', 12);
            INSERT INTO qiwi_http_log (ip, url, method, headers, body, created_at) VALUES
              ('91.232.230.10', '/payment?command=pay&txn_id=1001&account=acc1&sum=10.45', 'GET',
               '{{\"Host\":\"shop\",\"Authorization\":\"Basic cWl3aTpzM2NyZXQ=\"}}', '', '2024-01-31 20:00:00'),
              ('91.232.230.10', '/payment', 'POST',
               '{{\"Host\":[\"shop\"],\"Cookie\":[\"session=abc\"]}}', 'command=pay&txn_id=0001003', '2024-01-31 20:20:00');"
        ),
    );
    let before = fingerprint(&mut orig);
    let (hook, got) = rt.block_on(receiver());
    let db = dir.join("main.db");
    let mut env = pg_env(pg, "orig_main");
    env.push(("QIWI_WEBHOOK_URL", hook.clone()));
    let out = import(dir, &db, &env, &["--with-log"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // Said before it runs: what will be delivered, and where.
    assert!(
        stdout.contains("2 of them have status 0") && stdout.contains(&hook),
        "{stdout}"
    );
    // Both sides' figures, matching: 10.45 + 0.12 + 100 + 45 = 155.57 (0.125 rounds to even).
    assert!(stdout.contains("the sides match: 4 = 4"), "{stdout}");
    let both: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("PostgreSQL qiwi_transaction") || l.contains("SQLite: imported"))
        .collect();
    assert_eq!(both.len(), 2, "{stdout}");
    for l in both {
        assert!(l.contains(" 4 ") && l.ends_with("155.57"), "{l}");
    }
    assert!(
        stdout.contains("id 7: sum 0.125 is not a whole number of kopecks: stored as 0.12"),
        "{stdout}"
    );
    assert!(
        stdout.contains("request log: 2 rows in PostgreSQL, 2 stored"),
        "{stdout}"
    );
    assert!(!stdout.contains(PASSWORD) && !text(&out.stderr).contains(PASSWORD));
    // Nothing was written on the original's side.
    assert_eq!(fingerprint(&mut orig), before);
    // The indexes the import rebuilt at its end are those of a database `migrate` creates.
    let fresh = dir.join("fresh.db");
    let o = gateway_cmd(
        dir,
        &["migrate"],
        &[("DATABASE_PATH", fresh.display().to_string())],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let indexes = "SELECT group_concat(name || ':' || sql, ' | ') FROM
        (SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name)";
    assert_eq!(one::<String>(&db, indexes), one::<String>(&fresh, indexes));

    // The rows as the gateway keeps them.
    let c = sqlite(&db);
    let rows: Vec<(i64, String, i64, i64, Option<i64>, String)> = c
        .prepare(
            "SELECT id, code, sum_minor, status, delivery_due_ms, extra
             FROM qiwi_transaction ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let short: Vec<(i64, &str, i64, i64, bool)> = rows
        .iter()
        .map(|r| (r.0, r.1.as_str(), r.2, r.3, r.4.is_some()))
        .collect();
    assert_eq!(
        short,
        [
            (5, "1001", 1045, 1, false),
            (7, "1002", 12, 0, true),
            (9, "1003", 10000, 0, true),
            (12, "1004", 4500, 1, false),
        ]
    );
    // The other column kept in extra (updated_at and empty values left out), and the sum as
    // the original had it when it was not whole kopecks.
    let extra = |i: usize| serde_json::from_str::<serde_json::Value>(&rows[i].5).unwrap();
    assert_eq!(extra(0), serde_json::json!({"terminal": "T-1"}));
    assert_eq!(extra(1), serde_json::json!({"original_sum": "0.125"}));
    assert_eq!(extra(3), serde_json::json!({}));
    let created: String = one(
        &db,
        "SELECT created_at || ' ' || txn_date FROM qiwi_transaction WHERE id = 5",
    );
    assert_eq!(created, "2024-01-31 20:00:00 20240131230000");
    let headers: String = one(
        &db,
        "SELECT group_concat(headers || txn_id, ' ') FROM qiwi_http_log",
    );
    assert!(
        headers.contains("Basic qiwi:***") && headers.contains("***"),
        "{headers}"
    );
    assert!(
        !headers.contains("cWl3aTpzM2NyZXQ") && !headers.contains("session=abc"),
        "{headers}"
    );
    assert!(
        headers.contains("}1001") && headers.contains("}1003"),
        "{headers}"
    );
    drop(c);

    // The gateway on the imported database.
    let gw = Gateway::start(dir, &db, &hook);
    // The import takes the lock `serve` holds: refused while the gateway runs.
    let out = import(dir, &db, &env, &["--merge"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("import-original needs the gateway stopped")
            && stderr.contains("main.db.lock"),
        "{stderr}"
    );
    rt.block_on(the_gateway_on_the_import(&gw, &db, &got));
    drop(gw);
}

async fn the_gateway_on_the_import(
    gw: &Gateway,
    db: &Path,
    got: &Arc<Mutex<Vec<serde_json::Value>>>,
) {
    // Repeats of imported pays answer 0 with the original's prv_txn, and store nothing.
    assert_eq!(
        gw.pay("1001", "acc1", "10.45").await,
        ("0".into(), Some("5".into()))
    );
    assert_eq!(
        gw.pay("0001003", "acc3", "100.00").await,
        ("0".into(), Some("9".into()))
    );
    assert_eq!(
        gw.pay("1004", "acc4", "45").await,
        ("0".into(), Some("12".into()))
    );
    // The same txn_id with another sum is the protocol's conflict, as for any stored payment.
    assert_eq!(gw.pay("1001", "acc1", "10.46").await.0, "300");
    assert_eq!(one::<i64>(db, "SELECT count(*) FROM qiwi_transaction"), 4);
    // A new payment gets an id above the imported ones.
    assert_eq!(
        gw.pay("2000", "acc9", "1.00").await,
        ("0".into(), Some("13".into()))
    );
    // Status 0 rows (7, 9) and the new one are delivered; status 1 rows (5, 12) never are.
    wait_for("the due webhooks", || received_ids(got).len() >= 3).await;
    assert_eq!(received_ids(got), ["13", "7", "9"]);
    let sent_9 = got
        .lock()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "9")
        .cloned()
        .unwrap();
    assert_eq!(sent_9["code"], "1003");
    assert_eq!(sent_9["amount"], "100.00");
    assert_eq!(sent_9["created_at"], "2024-01-31 20:20:00");
    wait_for("the deliveries recorded", || {
        one::<i64>(db, "SELECT count(*) FROM qiwi_transaction WHERE status = 1") == 5
    })
    .await;
    assert_eq!(
        one::<i64>(
            db,
            "SELECT count(*) FROM qiwi_webhook_attempt WHERE transaction_id IN (5, 12)"
        ),
        0
    );
}

fn a_second_import_is_refused_and_merge_reports_conflicts(dir: &Path, pg: &Pg) {
    let db = dir.join("main.db");
    let env = pg_env(pg, "orig_main");
    // Payments are there (the imported ones and the gateway's 2000): refused, one line.
    let out = import(dir, &db, &env, &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("already has 5 payments") && stderr.contains("--merge"),
        "{stderr}"
    );
    // The log was copied once: never twice.
    let out = import(dir, &db, &env, &["--merge", "--with-log"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("already copied the original's request log"));

    // A second original: one row the gateway has (same data: skipped), one whose txn_id the
    // gateway has with other data (reported, not imported), one whose id (13) is the
    // gateway's new payment (stored under a new id), one new.
    pg.database(
        "orig_merge",
        &format!(
            "{ORIGINAL_TABLES}
            INSERT INTO qiwi_transaction (id, account, code, sum, status, created_at) VALUES
              (5,  'acc1',  '1001', 10.45, 1, '2024-01-31 20:00:00'),
              (13, 'acc13', '3000', 3,     1, '2024-02-01 08:00:00'),
              (20, 'other', '2000', 7,     0, '2024-02-01 09:00:00'),
              (21, 'acc21', '4000', 4,     0, '2024-02-01 10:00:00');"
        ),
    );
    let env = pg_env(pg, "orig_merge");
    let out = import(dir, &db, &env, &["--merge"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("the sides match: 4 = 2 + 1 + 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "txn_id 2000: the original's id 20 (account \"other\", sum 7.00) differs from the \
             gateway's id 13 (account \"acc9\", sum 1.00): not imported"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("id 13: the gateway's payment 13 has this id: stored as id 22"),
        "{stdout}"
    );
    let rows: String = one(
        &db,
        "SELECT group_concat(id || ':' || code || ':' || account, ' ') FROM
           (SELECT * FROM qiwi_transaction WHERE id > 12 ORDER BY id)",
    );
    assert_eq!(rows, "13:2000:acc9 21:4000:acc21 22:3000:acc13");
}

fn an_older_schema_numeric_sums_and_zoned_times_with_no_deliver(pg: &Pg, dir: &Path) {
    pg.database(
        "orig_legacy",
        "CREATE SCHEMA legacy;
         CREATE TABLE legacy.qiwi_transaction (
             id integer PRIMARY KEY, account text, code text, sum numeric(14, 4),
             status smallint, created_at timestamptz);
         INSERT INTO legacy.qiwi_transaction VALUES
             (1, 'a', '77', 10.4550, 0, '2024-01-31 23:00:00+03'),
             (2, 'b', '78', 10.4650, 1, '2024-02-01 00:30:00+00');
         CREATE TABLE legacy.qiwi_http_log (
             id integer PRIMARY KEY, ip text, url text, method text, headers text, body text,
             created_at timestamptz);
         INSERT INTO legacy.qiwi_http_log VALUES
             (1, '10.0.0.1', '/payment?command=pay&txn_id=077', 'GET',
              '{\"authorization\": \"Bearer tok-123\"}', '', '2024-01-31 23:00:00+03'),
             (2, '10.0.0.1', '/payment', 'GET', 'not json at all', NULL, '2024-02-01 00:00:00+00');",
    );
    let db = dir.join("legacy.db");
    let mut env = pg_env(pg, "orig_legacy");
    env.push(("PG_SCHEMA", "legacy".into()));
    let out = import(dir, &db, &env, &["--no-deliver", "--with-log"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("--no-deliver: they are marked delivered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 due now (status 0), 2 not sent again"),
        "{stdout}"
    );
    // numeric sums half to even: 1045.5 -> 1046, 1046.5 -> 1046; times with a zone in UTC.
    let rows: String = one(
        &db,
        "SELECT group_concat(id || ':' || sum_minor || ':' || status || ':' ||
                             coalesce(delivery_due_ms, '-') || ':' || created_at, ' ')
         FROM (SELECT * FROM qiwi_transaction ORDER BY id)",
    );
    assert_eq!(
        rows,
        "1:1046:1:-:2024-01-31 20:00:00 2:1046:1:-:2024-02-01 00:30:00"
    );
    // headers as text: a JSON object masked, anything else kept under "original".
    let log: String = one(
        &db,
        "SELECT group_concat(headers || ' ' || coalesce(txn_id, '-') || ' ' || created_at, ' | ')
         FROM (SELECT * FROM qiwi_http_log ORDER BY id)",
    );
    assert_eq!(
        log,
        r#"{"authorization":"Bearer ***"} 77 2024-01-31 20:00:00 | {"original":"not json at all"} - 2024-02-01 00:00:00"#
    );
}

fn rows_that_cannot_be_imported_leave_nothing_imported(pg: &Pg, dir: &Path) {
    pg.database(
        "orig_bad",
        &format!(
            "{ORIGINAL_TABLES}
            INSERT INTO qiwi_transaction (id, account, code, sum, status) VALUES
              (1, 'a', '1', 1, 0), (2, 'b', '2', 'NaN', 0), (3, 'c', '3', -5, 1);"
        ),
    );
    let db = dir.join("bad.db");
    let out = import(dir, &db, &pg_env(pg, "orig_bad"), &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("2 rows of qiwi_transaction cannot be imported, so nothing was")
            && stderr.contains("id 2: sum `NaN` is not a number")
            && stderr.contains("id 3: sum `-5` is negative"),
        "{stderr}"
    );
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM qiwi_transaction"), 0);
    assert_eq!(one::<i64>(&db, "SELECT count(*) FROM import_run"), 0);
}

fn a_wrong_password_is_one_line_without_the_password(pg: &Pg, dir: &Path) {
    let wrong = "Wrong-Pass-98765";
    let mut env = pg_env(pg, "orig_main");
    env.retain(|(k, _)| *k != "PG_PASSWORD");
    env.push(("PG_PASSWORD", wrong.into()));
    let out = import(dir, &dir.join("pw.db"), &env, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "127.0.0.1:{} (PG_REAL_HOST / PG_PORT) refused user \"qiwi\"",
            pg.port
        )) && stderr.contains("password authentication failed")
            && stderr.contains("check PG_USER and PG_PASSWORD"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stdout.contains(wrong),
        "{stdout}{stderr}"
    );
}

/// No server behind the port: one line naming where and which settings, within the connect
/// timeout.
#[test]
fn an_unreachable_server_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = vec![
        ("PG_HOST", "127.0.0.1".to_owned()),
        ("PG_PORT", port.to_string()),
        ("PG_DATABASE", "qiwi".into()),
        ("PG_USER", "qiwi".into()),
        ("PG_PASSWORD", "Never-Printed-1".into()),
    ];
    let out = import(dir.path(), &dir.path().join("q.db"), &env, &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the original's PostgreSQL at 127.0.0.1:{port} (PG_HOST / PG_PORT)"
        )) && stderr.contains("onnection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("Never-Printed-1"));
    // check-config shows the settings with the password masked.
    let mut shown = env.clone();
    shown.push(("LISTEN_ADDR", "127.0.0.1:0".into()));
    shown.push((
        "DATABASE_PATH",
        dir.path().join("q.db").display().to_string(),
    ));
    let out = gateway_cmd(dir.path(), &["check-config"], &shown);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("pg_password") && stdout.contains("\"***\"") && stdout.contains("pg_port"),
        "{stdout}"
    );
    assert!(!stdout.contains("Never-Printed-1"), "{stdout}");
    // Nothing configured: the settings to give, not a connection attempt.
    let out = import(dir.path(), &dir.path().join("q.db"), &[], &[]);
    assert!(text(&out.stderr).contains("PG_HOST (or PG_REAL_HOST) is not set"));
}
