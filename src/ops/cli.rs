//! What the command line's operations subcommands print and call; `main.rs` only dispatches.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use figment::Source;

use crate::config::{self, Config, ConfigError};

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
    /// Its value as TOML-like text (secrets masked), `None` when unset.
    pub value: Option<String>,
    /// Where the value came from.
    pub origin: Origin,
}

/// Validates the configuration, then lists every key with its effective value (secrets
/// masked) and where it came from.
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
                Some(Source::Code(_)) => Origin::Default,
                _ if value.is_some() => Origin::Env(key.to_uppercase()),
                _ => Origin::Default,
            };
            let value = value.map(|v| {
                if config::SECRET_KEYS.contains(&key) {
                    "\"***\"".to_owned()
                } else {
                    serde_json::to_string(&v).unwrap_or_else(|_| "?".into())
                }
            });
            Setting { key, value, origin }
        })
        .collect();
    Ok((cfg, settings))
}

/// The `check-config` report: one line per key, `key = value  # origin`.
pub fn render_settings(file: Option<&Path>, settings: &[Setting]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# configuration file: {}",
        file.map_or_else(|| "none".to_owned(), |p| p.display().to_string())
    );
    let _ = writeln!(out, "# the configuration is valid");
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
    out
}

/// The URL the container's health check calls: `/healthz` on the listen address, reached
/// over loopback when the gateway listens on every address.
pub fn healthcheck_url(cfg: &Config) -> String {
    let addr = cfg.listen_addr;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{}/healthz", SocketAddr::new(ip, addr.port()))
}

/// Calls `/healthz`; `Ok` when it answers 200 within `timeout`. The certificate is not
/// verified: this only ever calls the gateway itself, by address, not by its name.
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
            let text = render_settings(Some(Path::new("gw.toml")), &settings);
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
        cfg.listen_addr = "[::]:8443".parse().unwrap();
        cfg.tls = Some(config::TlsFiles {
            cert: "c".into(),
            key: "k".into(),
        });
        assert_eq!(healthcheck_url(&cfg), "https://[::1]:8443/healthz");
    }
}
