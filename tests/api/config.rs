//! The real binary refuses a bad configuration with one line naming the key.

use std::process::Command;

/// Runs the binary in an empty folder with only `envs`: (success, stdout, stderr).
fn run(envs: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qiwi-gateway"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_stop_the_program_with_one_clear_line() {
    for (env, key) in [
        ("LISTEN_ADDR", "listen_addr"),
        ("QIWI_CHECK_URL", "qiwi_check_url"),
        ("QIWI_WEBHOOK_URL", "qiwi_webhook_url"),
        ("ACCOUNT_PATTERN", "account_pattern"),
        ("CHECK_TIMEOUT_SECS", "check_timeout_secs"),
    ] {
        let value = if env == "ACCOUNT_PATTERN" {
            "(["
        } else {
            "not valid"
        };
        let (ok, _, stderr) = run(&[(env, value)], &["check-config"]);
        assert!(!ok, "{env}");
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(key) && lines[0].contains(env), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn unknown_keys_in_the_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "listen_adress = \"0.0.0.0:1\"\n").unwrap();
    let (ok, _, stderr) = run(&[], &["--config", file.to_str().unwrap(), "check-config"]);
    assert!(!ok);
    assert!(stderr.contains("listen_adress"), "{stderr}");
}

#[test]
fn check_config_masks_secrets() {
    let (ok, stdout, _) = run(
        &[
            ("HTTP_AUTH_USERNAME", "u"),
            ("HTTP_AUTH_PASSWORD", "hunter2"),
        ],
        &["check-config"],
    );
    assert!(ok);
    assert!(
        stdout.contains("listen_addr") && !stdout.contains("hunter2"),
        "{stdout}"
    );
}
