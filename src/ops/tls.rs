//! Built-in HTTPS: the certificate and key from PEM files, reloaded on SIGHUP or when the
//! files change, without closing the listener (connections already open keep their session).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum_server::tls_rustls::RustlsConfig;
use tokio_util::sync::CancellationToken;

/// PEM files of the built-in HTTPS listener (`tls_cert_file`, `tls_key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Loads the certificate chain and key.
pub async fn load(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    // Which file is missing, said before rustls says "No such file" about one of the two.
    for (path, key, env) in [
        (&files.cert, "tls_cert_file", "TLS_CERT_FILE"),
        (&files.key, "tls_key_file", "TLS_KEY_FILE"),
    ] {
        if let Some(problem) = super::startup::unreadable_file(path, key, env) {
            anyhow::bail!(problem);
        }
    }
    RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot load the TLS certificate {} and key {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })
}

/// What tells a file changed: its modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads `config` from `files` on SIGHUP, or when either file looks different at a look
/// every `every`, until `stop`. A pair that does not load (a key written before its
/// certificate, say) is logged and the previous certificate kept; the next change retries.
///
/// The SIGHUP handler is installed, and the files' current state noted, before this returns
/// (so a SIGHUP right after start-up cannot hit the default action, which ends the process,
/// and a file changed right after start-up is not missed); must be called on the runtime.
/// Each certificate loaded is noted in `status` (its names and expiry).
pub fn watch(
    config: RustlsConfig,
    files: TlsFiles,
    every: Duration,
    stop: CancellationToken,
    status: std::sync::Arc<super::certs::TlsStatus>,
) -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; certificate files are still watched");
        })
        .ok();
    // Stamped now, not at the future's first poll: a file replaced between this call and that
    // poll (the runtime may be busy) would otherwise become the baseline and never be loaded.
    let mut last = (stamp(&files.cert), stamp(&files.key));
    async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let reason = tokio::select! {
                () = stop.cancelled() => return,
                () = hangup => "SIGHUP",
                _ = tick.tick() => {
                    let now = (stamp(&files.cert), stamp(&files.key));
                    if now == last {
                        continue;
                    }
                    last = now;
                    "the files changed"
                }
            };
            match config.reload_from_pem_file(&files.cert, &files.key).await {
                Ok(()) => {
                    tracing::info!(reason, "reloaded the TLS certificate");
                    super::certs::note_file(&status, &files.cert);
                }
                Err(e) => tracing::error!(
                    reason,
                    error = %e,
                    "the new TLS certificate or key does not load; still serving the previous one"
                ),
            }
        }
    }
}
