//! What the command line's operations subcommands print and call; `main.rs` only dispatches.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use figment::Source;

use crate::config::{self, Config, ConfigError};
use crate::ops::redact;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(String),
    /// The environment variable.
    Env(String),
}

/// One key of the effective configuration.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The key as written in `config.toml`.
    pub key: &'static str,
    /// Its value as TOML-like text (secrets and URL credentials masked), `None` when unset.
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Origin,
}

/// The keys whose values are URLs: shown through [`redact::url`].
const URL_KEYS: &[&str] = &["qiwi_check_url", "qiwi_webhook_url"];

/// Validates the configuration, then lists every key with its effective value (secrets
/// masked, URLs without credentials or query values) and where it came from.
pub fn effective_config(file: Option<&Path>) -> Result<(Config, Vec<Setting>), ConfigError> {
    let cfg = config::load(file)?;
    let figment = config::figment(file);
    let settings = config::KEYS
        .iter()
        .map(|&key| {
            let value = figment
                .find_value(key)
                .ok()
                .filter(|v| !matches!(v, figment::value::Value::Empty(..)));
            let origin = match figment.find_metadata(key).and_then(|m| m.source.as_ref()) {
                Some(Source::File(p)) => Origin::File(p.display().to_string()),
                Some(Source::Custom(_)) => Origin::Env(key.to_uppercase()),
                _ => Origin::Default,
            };
            let value = value.map(|v| show(key, &v));
            Setting { key, value, origin }
        })
        .collect();
    Ok((cfg, settings))
}

/// A value as `check-config` prints it: secrets as `"***"`, URLs masked, any other text
/// with URLs inside it masked too.
fn show(key: &str, v: &figment::value::Value) -> String {
    if config::SECRET_KEYS.contains(&key) {
        return format!("\"{}\"", redact::MASK);
    }
    if URL_KEYS.contains(&key)
        && let Some(text) = v.as_str()
    {
        let shown = match url::Url::parse(text) {
            Ok(u) => redact::url(&u),
            Err(_) => redact::text(text),
        };
        return serde_json::to_string(&shown).unwrap_or_else(|_| "?".into());
    }
    redact::text(&serde_json::to_string(v).unwrap_or_else(|_| "?".into()))
}

/// The outcome of one of the checks `serve` makes before it binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `database folder /data is writable`.
    pub what: String,
    /// `None` when it passed; else what is wrong and how to fix it.
    pub problem: Option<String>,
    /// A remark that is not a failure (the address is in use by the running gateway).
    pub note: Option<String>,
}

impl Check {
    fn ok(what: String) -> Check {
        Check {
            what,
            problem: None,
            note: None,
        }
    }
    fn result(what: String, r: Result<(), String>) -> Check {
        Check {
            what,
            problem: r.err(),
            note: None,
        }
    }
}

/// Runs, without changing anything, every check `serve` makes before it binds: the database
/// file (or the folder it will be created in) is writable, the TLS certificate and key load,
/// the check client builds, and the listen address can be bound when it is free (in use is a
/// note, not a failure: the running gateway may hold it). Also says whether a gateway holds
/// the database's lock.
pub async fn preflight(cfg: &Config) -> Vec<Check> {
    let mut checks = vec![database_writable(&cfg.ops.database_path)];
    match crate::ops::lock::holder(&cfg.ops.database_path) {
        Some(pid) => checks.push(Check {
            what: "database lock".into(),
            problem: None,
            note: Some(format!(
                "a gateway{} is serving this database now (it holds {})",
                if pid == 0 {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
                crate::ops::lock::lock_path(&cfg.ops.database_path).display()
            )),
        }),
        None => checks.push(Check::ok("database lock is free".into())),
    }
    if let Some(files) = &cfg.server.tls {
        let r = crate::ops::tls::load(files)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:#}"));
        checks.push(Check::result(
            format!(
                "TLS certificate {} and key {} load",
                files.cert.display(),
                files.key.display()
            ),
            r,
        ));
    }
    if let Some(acme) = &cfg.server.acme {
        for (what, r) in crate::ops::acme::preflight(acme) {
            checks.push(Check::result(what, r));
        }
    }
    if let Some(url) = &cfg.check.url {
        let r = crate::qiwi::check::Checker::new(url.clone(), cfg.check.timeout)
            .map(|_| ())
            .map_err(|e| redact::text(&e.without_url().to_string()));
        checks.push(Check::result(
            format!("check client for {}", redact::url(url)),
            r,
        ));
    }
    let addr = cfg.server.listen_addr;
    match std::net::TcpListener::bind(addr) {
        Ok(_) => checks.push(Check::ok(format!("listen address {addr} can be bound"))),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => checks.push(Check {
            what: format!("listen address {addr}"),
            problem: None,
            note: Some("in use now (by the running gateway?): serve needs it free".into()),
        }),
        Err(e) => checks.push(Check::result(
            format!("listen address {addr}"),
            Err(format!("cannot be bound: {e}")),
        )),
    }
    checks
}

/// The database file is readable and writable, and the folder it is (or will be created) in,
/// or the nearest existing parent of that folder, is writable: SQLite creates its `-wal` and
/// `-shm` files beside the database. Probes by creating and removing a file, as access bits
/// do not tell about read-only mounts.
fn database_writable(db: &Path) -> Check {
    if db.exists() {
        let r = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(db)
            .map(|_| ())
            .map_err(|e| {
                format!("cannot open it for writing: {e}; give the user the gateway runs as write access")
            });
        if r.is_err() {
            return Check::result(format!("database {} is writable", db.display()), r);
        }
    }
    let dir = db
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("."));
    let what = if existing == dir {
        format!("database folder {} is writable", dir.display())
    } else {
        format!(
            "database folder {} can be created in {}",
            dir.display(),
            existing.display()
        )
    };
    let probe = existing.join(format!(".qiwi-gateway-check-{}", std::process::id()));
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map(|_| {
            let _ = std::fs::remove_file(&probe);
        })
        .map_err(|e| {
            format!(
                "cannot write in {}: {e}; give the user the gateway runs as write access (e.g. chown)",
                existing.display()
            )
        });
    Check::result(what, r)
}

/// The `check-config` report: one line per key, `key = value  # origin`, then one line per
/// check; the header says whether everything passed.
pub fn render_settings(file: Option<&Path>, settings: &[Setting], checks: &[Check]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# configuration file: {}",
        file.map_or_else(|| "none".to_owned(), |p| p.display().to_string())
    );
    let failed = checks.iter().filter(|c| c.problem.is_some()).count();
    if failed == 0 {
        let _ = writeln!(
            out,
            "# the configuration is valid and every start-up check passed"
        );
    } else {
        let _ = writeln!(
            out,
            "# the values are valid, but {failed} start-up check(s) failed: serve would refuse to start"
        );
    }
    for s in settings {
        let origin = match &s.origin {
            Origin::Default => "default".to_owned(),
            Origin::File(p) => format!("file {p}"),
            Origin::Env(var) => format!("env {var}"),
        };
        let line = match &s.value {
            Some(v) => format!("{} = {v}", s.key),
            None => format!("# {} (not set)", s.key),
        };
        let _ = writeln!(out, "{line:<60} # {origin}");
    }
    for c in checks {
        let _ = match (&c.problem, &c.note) {
            (Some(p), _) => writeln!(out, "# FAILED: {}: {p}", c.what),
            (None, Some(n)) => writeln!(out, "# note: {}: {n}", c.what),
            (None, None) => writeln!(out, "# ok: {}", c.what),
        };
    }
    out
}

/// The URL the container's health check calls: `/healthz` on the listen address, reached
/// over loopback when the gateway listens on every address.
pub fn healthcheck_url(cfg: &Config) -> String {
    let addr = cfg.server.listen_addr;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if cfg.server.https() { "https" } else { "http" };
    format!("{scheme}://{}/healthz", SocketAddr::new(ip, addr.port()))
}

/// Calls `/healthz`; `Ok` when it answers 200 within `timeout`. The certificate is not
/// verified: this only ever calls the gateway itself, by address, not by its name. Over HTTPS
/// it offers `h2, http/1.1` in ALPN, as browsers and curl do, and speaks what the listener
/// picks: a listener that accepts a protocol it cannot serve fails here too.
pub async fn healthcheck(cfg: &Config, timeout: Duration) -> anyhow::Result<()> {
    let url = healthcheck_url(cfg);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .tls_danger_accept_invalid_certs(true)
        .build()?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::Error::new(e).context(url.clone()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        anyhow::bail!("{url} answered {}", resp.status())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn every_value_says_where_it_came_from_and_secrets_are_masked() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gw.toml",
                "listen_addr = \"127.0.0.1:9000\"\nhttp_auth_username = \"qiwi\"\nhttp_auth_password = \"hunter2\"\n",
            )?;
            jail.set_env("DATABASE_PATH", "/tmp/env.db");
            jail.set_env("METRICS_TOKEN", "tok-secret");
            jail.set_env("QIWI_ALLOWED_IPS", "79.142.16.0/20,91.213.51.0/24");
            let (_, settings) = effective_config(Some(Path::new("gw.toml"))).unwrap();
            let get = |k: &str| settings.iter().find(|s| s.key == k).unwrap().clone();
            assert_eq!(get("listen_addr").origin, Origin::File("gw.toml".into()));
            assert_eq!(
                get("listen_addr").value.as_deref(),
                Some("\"127.0.0.1:9000\"")
            );
            assert_eq!(
                get("database_path").origin,
                Origin::Env("DATABASE_PATH".into())
            );
            assert_eq!(get("log_retention_days").origin, Origin::Default);
            assert_eq!(get("log_retention_days").value.as_deref(), Some("90"));
            assert_eq!(get("max_sum").value.as_deref(), Some("\"15000.00\""));
            assert_eq!(get("webhook_max_attempts").value, None);
            assert_eq!(get("http_auth_password").value.as_deref(), Some("\"***\""));
            assert_eq!(get("metrics_token").value.as_deref(), Some("\"***\""));
            assert_eq!(
                get("metrics_token").origin,
                Origin::Env("METRICS_TOKEN".into())
            );
            let text = render_settings(Some(Path::new("gw.toml")), &settings, &[]);
            assert!(
                !text.contains("hunter2") && !text.contains("tok-secret"),
                "{text}"
            );
            assert!(text.contains("79.142.16.0/20"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn the_healthcheck_reaches_a_wildcard_listener_over_loopback() {
        let mut cfg = Config::default();
        assert_eq!(healthcheck_url(&cfg), "http://127.0.0.1:8080/healthz");
        cfg.server.listen_addr = "[::]:8443".parse().unwrap();
        cfg.server.tls = Some(crate::ops::tls::TlsFiles {
            cert: "c".into(),
            key: "k".into(),
        });
        assert_eq!(healthcheck_url(&cfg), "https://[::1]:8443/healthz");
    }
}
