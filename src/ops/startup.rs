//! Start-up failures said the way an operator can act on them: one line, the cause once, the
//! path, and the fix (issue 10 point 2, issue 15 point 4).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;

/// The effective uid and gid this process runs as (`None` where `/proc` is absent): the owner
/// of `/proc/self` is the process's effective user.
pub fn process_ids() -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata("/proc/self").ok()?;
        Some((m.uid(), m.gid()))
    }
    #[cfg(not(unix))]
    None
}

/// Why `path` (a folder or file the gateway must write) could not be written, with the fix:
/// permission denied (the uid we run as, the owner, `chown`), a read-only file system, no
/// space; other errors as the OS words them. `e` is the error the write got.
pub fn write_problem(path: &Path, e: &std::io::Error) -> String {
    let shown = path.display();
    match e.kind() {
        ErrorKind::PermissionDenied => {
            let (who, chown) = match process_ids() {
                Some((uid, gid)) => (format!("uid {uid} (gid {gid})"), format!("{uid}:{gid}")),
                None => ("this user".to_owned(), "USER:GROUP".to_owned()),
            };
            let owner = owner_of(path).map_or_else(String::new, |o| format!(" and it {o}"));
            format!(
                "permission denied writing {shown}: the gateway runs as {who}{owner}; fix: \
                 `chown -R {chown} {shown}` (for a container bind mount, on the host folder), \
                 or use a named volume"
            )
        }
        ErrorKind::ReadOnlyFilesystem => format!(
            "{shown} is on a read-only file system; fix: mount it read-write, or set \
             DATABASE_PATH to a writable place"
        ),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => format!(
            "no space left for {shown}; fix: free space on that file system or grow the volume"
        ),
        ErrorKind::NotFound => format!("{shown} does not exist"),
        _ => format!("{shown}: {}", os_text(e)),
    }
}

/// "belongs to uid 0 (mode 755)" for `path`, when it can be read.
fn owner_of(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(format!(
            "belongs to uid {} (mode {:o})",
            m.uid(),
            m.mode() & 0o7777
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The OS's words for `e`, lower case, without the `(os error N)` suffix.
pub fn os_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut c = text.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => text,
    }
}

/// Whether the folder `dir` takes a new file: creates and removes a probe file. `Err` is the
/// one-line [`write_problem`].
pub fn check_writable_folder(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".qiwi-gateway-write-test.{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(f) => {
            drop(f);
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(write_problem(dir, &e)),
    }
}

/// Why `addr` could not be bound, with the fix.
pub fn listen_problem(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: the port is already in use (another gateway or program \
             holds it); fix: stop that program or set LISTEN_ADDR to a free port"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr}: no network interface has that address; fix: set \
             LISTEN_ADDR to an address of this machine, or 0.0.0.0:{}",
            addr.port()
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr}: permission denied (ports below 1024 need privileges); \
             fix: set LISTEN_ADDR to a port above 1023, e.g. 0.0.0.0:8080"
        ),
        _ => format!("cannot listen on {addr}: {}", os_text(e)),
    }
}

/// Why a TLS file named by `key` (`tls_cert_file`, env `TLS_CERT_FILE`) cannot be read, or
/// `None` when it can.
pub fn unreadable_file(path: &Path, key: &str, env: &str) -> Option<String> {
    match std::fs::File::open(path) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "cannot read `{key}` (env {env}) {}: {}; fix: point it at a readable PEM file",
            path.display(),
            os_text(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_text_drops_the_errno_suffix() {
        let e = std::io::Error::from(ErrorKind::PermissionDenied);
        assert!(!os_text(&e).contains("os error"));
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(os_text(&e), "permission denied");
    }

    #[test]
    fn permission_denied_names_the_uid_and_chown() {
        let e = std::io::Error::from_raw_os_error(13);
        let line = write_problem(Path::new("/data"), &e);
        let (uid, gid) = process_ids().unwrap();
        assert!(line.contains(&format!("uid {uid}")), "{line}");
        assert!(
            line.contains(&format!("chown -R {uid}:{gid} /data")),
            "{line}"
        );
        assert_eq!(line.matches("permission denied").count(), 1, "{line}");
    }
}
