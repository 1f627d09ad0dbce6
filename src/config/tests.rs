use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Jail;
use ipnet::IpNet;

use super::*;
use crate::ops::LogFormat;
use crate::qiwi::Amount;

#[test]
fn display_settings_are_iana_zones_and_known_locales() {
    let raw = RawConfig {
        display_timezone: "Europe/Moscow".into(),
        display_locale: "RU".into(),
        ..RawConfig::default()
    };
    let c = raw.validate().unwrap();
    assert_eq!(c.admin.display_timezone, chrono_tz::Europe::Moscow);
    assert_eq!(c.admin.display_locale, DisplayLocale::Ru);
    let e = RawConfig {
        display_timezone: "Europe/Moskva".into(),
        ..RawConfig::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("display_timezone") && e.contains("IANA"), "{e}");
    let e = RawConfig {
        display_locale: "de".into(),
        ..RawConfig::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("display_locale"), "{e}");
}

#[test]
fn the_example_file_loads_and_documents_every_key() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml.example");
    let text = std::fs::read_to_string(&example).unwrap();
    for key in KEYS {
        assert!(
            text.contains(&format!("{key} =")),
            "{key} is not in the example"
        );
        assert!(
            text.contains(&key.to_uppercase()),
            "{key}'s env is not in the example"
        );
    }
    Jail::expect_with(|_| {
        load(Some(&example)).unwrap();
        Ok(())
    });
}

#[test]
fn defaults_need_no_configuration() {
    Jail::expect_with(|_| {
        let c = load(None).unwrap();
        assert_eq!(c.server.listen_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.ops.database_path, PathBuf::from("data/qiwi.db"));
        assert!(c.qiwi.http_auth.is_none());
        assert_eq!(c.qiwi.min_sum, Amount::from_minor(1));
        assert_eq!(c.qiwi.max_sum, Some(Amount::from_minor(1_500_000)));
        assert_eq!(c.check.timeout, Duration::from_secs(10));
        Ok(())
    });
}

#[test]
fn env_beats_file_beats_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "gw.toml",
            r#"
            listen_addr = "127.0.0.1:9000"
            database_path = "/tmp/file.db"
            min_sum = 1.5
            "#,
        )?;
        jail.set_env("DATABASE_PATH", "/tmp/env.db");
        jail.set_env("HTTP_AUTH_USERNAME", "qiwi");
        jail.set_env("HTTP_AUTH_PASSWORD", "12345");
        let c = load(Some(Path::new("gw.toml"))).unwrap();
        assert_eq!(c.server.listen_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.ops.database_path, PathBuf::from("/tmp/env.db"));
        assert_eq!(c.qiwi.min_sum, Amount::from_minor(150));
        let auth = c.qiwi.http_auth.unwrap();
        assert_eq!(auth.username, "qiwi");
        assert_eq!(auth.password.0, "12345");
        Ok(())
    });
}

#[test]
fn numeric_looking_env_values_stay_text() {
    Jail::expect_with(|jail| {
        jail.set_env("MIN_SUM", "0.10");
        jail.set_env("MAX_SUM", "15000");
        jail.set_env("METRICS_TOKEN", "true");
        let c = load(None).unwrap();
        assert_eq!(c.qiwi.min_sum, Amount::from_minor(10));
        assert_eq!(c.qiwi.max_sum, Some(Amount::from_minor(1_500_000)));
        assert_eq!(c.ops.metrics_token.unwrap().0, "true");
        Ok(())
    });
}

fn error_of(
    setup: impl FnOnce(&mut Jail) -> figment::error::Result<Option<&'static str>>,
) -> String {
    let mut msg = String::new();
    Jail::expect_with(|jail| {
        let file = setup(jail)?;
        msg = load(file.map(Path::new)).unwrap_err().to_string();
        Ok(())
    });
    msg
}

#[test]
fn errors_name_the_key() {
    let m = error_of(|j| {
        j.set_env("QIWI_CHECK_URL", "not a url");
        Ok(None)
    });
    assert!(
        m.contains("qiwi_check_url") && m.contains("QIWI_CHECK_URL"),
        "{m}"
    );

    let m = error_of(|j| {
        j.set_env("LISTEN_ADDR", "localhost");
        Ok(None)
    });
    assert!(m.contains("listen_addr"), "{m}");

    let m = error_of(|j| {
        j.set_env("ACCOUNT_PATTERN", "([a-z");
        Ok(None)
    });
    assert!(m.contains("account_pattern"), "{m}");

    let m = error_of(|j| {
        j.create_file("c.toml", "listen_adr = \"1.2.3.4:80\"")?;
        Ok(Some("c.toml"))
    });
    assert!(m.contains("listen_adr"), "{m}");

    let m = error_of(|j| {
        j.set_env("CHECK_TIMEOUT_SECS", "soon");
        Ok(None)
    });
    assert!(
        m.contains("check_timeout_secs") && m.contains("CHECK_TIMEOUT_SECS"),
        "{m}"
    );

    let m = error_of(|j| {
        j.set_env("HTTP_AUTH_USERNAME", "only-user");
        Ok(None)
    });
    assert!(m.contains("http_auth_password"), "{m}");

    let m = error_of(|j| {
        j.set_env("MIN_SUM", "1,5");
        Ok(None)
    });
    assert!(m.contains("min_sum"), "{m}");

    let m = error_of(|_| Ok(Some("missing.toml")));
    assert!(m.contains("missing.toml"), "{m}");
}

#[test]
fn ip_lists_come_from_toml_arrays_or_comma_separated_env() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "gw.toml",
            r#"qiwi_allowed_ips = ["79.142.16.0/20", "91.213.51.0/24"]"#,
        )?;
        jail.set_env("TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12,::1");
        let c = load(Some(Path::new("gw.toml"))).unwrap();
        let show = |v: &[IpNet]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            show(&c.qiwi.allowed_ips),
            ["79.142.16.0/20", "91.213.51.0/24"]
        );
        assert_eq!(
            show(&c.server.trusted_proxies),
            ["10.0.0.1/32", "172.16.0.0/12", "::1/128"]
        );

        jail.set_env("QIWI_ALLOWED_IPS", "79.142.16.0/20,91.232.230.0/23");
        let c = load(Some(Path::new("gw.toml"))).unwrap();
        assert_eq!(
            show(&c.qiwi.allowed_ips),
            ["79.142.16.0/20", "91.232.230.0/23"]
        );

        jail.set_env("QIWI_ALLOWED_IPS", "");
        assert!(
            load(Some(Path::new("gw.toml")))
                .unwrap()
                .qiwi
                .allowed_ips
                .is_empty()
        );
        Ok(())
    });
}

#[test]
fn ops_keys_are_validated() {
    let m = error_of(|j| {
        j.set_env("QIWI_ALLOWED_IPS", "79.142.16.0/20,qiwi.com");
        Ok(None)
    });
    assert!(
        m.contains("qiwi_allowed_ips") && m.contains("qiwi.com"),
        "{m}"
    );
    let m = error_of(|j| {
        j.set_env("TRUSTED_PROXIES", "10.0.0.0/33");
        Ok(None)
    });
    assert!(m.contains("trusted_proxies"), "{m}");
    let m = error_of(|j| {
        j.set_env("LOG_FORMAT", "xml");
        Ok(None)
    });
    assert!(m.contains("log_format"), "{m}");
    let m = error_of(|j| {
        j.set_env("TLS_CERT_FILE", "/etc/cert.pem");
        Ok(None)
    });
    assert!(m.contains("tls_key_file"), "{m}");
    let m = error_of(|j| {
        j.set_env("ACME_DOMAINS", "pay.example.ru");
        j.set_env("TLS_CERT_FILE", "/etc/cert.pem");
        j.set_env("TLS_KEY_FILE", "/etc/key.pem");
        Ok(None)
    });
    assert!(
        m.contains("acme_domains") && m.contains("tls_cert_file"),
        "{m}"
    );
    let m = error_of(|j| {
        j.set_env("ACME_DOMAINS", "pay.example.ru,invalid..name");
        Ok(None)
    });
    assert!(
        m.contains("acme_domains") && m.contains("invalid..name"),
        "{m}"
    );
    let m = error_of(|j| {
        j.set_env("ACME_EMAIL", "ops@example.ru");
        Ok(None)
    });
    assert!(
        m.contains("acme_email") && m.contains("acme_domains"),
        "{m}"
    );
    Jail::expect_with(|jail| {
        jail.set_env("ACME_DOMAINS", "pay.example.ru, shop.example.ru");
        jail.set_env("DATABASE_PATH", "/var/lib/qiwi/qiwi.db");
        jail.set_env("ACME_RENEW_BEFORE_DAYS", "20");
        let c = load(None).unwrap();
        let a = c.server.acme.as_ref().unwrap();
        assert_eq!(a.domains, ["pay.example.ru", "shop.example.ru"]);
        assert_eq!(a.cache_dir, Path::new("/var/lib/qiwi/acme"));
        assert_eq!(a.directory_url.as_str(), crate::ops::acme::LETS_ENCRYPT);
        assert_eq!(a.renew_before, Duration::from_secs(20 * 86_400));
        assert!(c.server.https() && c.server.tls.is_none());
        Ok(())
    });
    let m = error_of(|j| {
        j.set_env("DB_CHECKPOINT", "never");
        Ok(None)
    });
    assert!(m.contains("db_checkpoint"), "{m}");
    let m = error_of(|j| {
        j.set_env("SHUTDOWN_TIMEOUT_SECS", "0");
        Ok(None)
    });
    assert!(m.contains("shutdown_timeout_secs"), "{m}");

    Jail::expect_with(|jail| {
        let c = load(None).unwrap();
        assert_eq!(c.ops.log_retention, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(c.ops.log_format, LogFormat::Text);
        assert_eq!(c.ops.db_checkpoint, Checkpointing::Auto);
        assert!(c.server.tls.is_none() && c.ops.metrics_token.is_none());
        jail.set_env("LOG_RETENTION_DAYS", "0");
        jail.set_env("LOG_FORMAT", "json");
        jail.set_env("METRICS_TOKEN", "12345");
        jail.set_env("DB_CHECKPOINT", "external");
        let c = load(None).unwrap();
        assert_eq!(c.ops.log_retention, None);
        assert_eq!(c.ops.log_format, LogFormat::Json);
        assert_eq!(c.ops.db_checkpoint, Checkpointing::External);
        assert_eq!(c.ops.metrics_token.unwrap().0, "12345");
        Ok(())
    });
}

/// Every key whose value is text (or a secret): what the environment gives must arrive
/// character for character.
const TEXT_KEYS: &[&str] = &[
    "listen_addr",
    "database_path",
    "http_auth_username",
    "http_auth_password",
    "qiwi_check_url",
    "account_pattern",
    "min_sum",
    "max_sum",
    "qiwi_webhook_url",
    "webhook_secret",
    "admin_username",
    "admin_password",
    "metrics_token",
    "log_format",
    "db_checkpoint",
    "tls_cert_file",
    "tls_key_file",
    "acme_domains",
    "acme_email",
    "acme_directory_url",
    "acme_cache_dir",
    "acme_ca_file",
    "qiwi_allowed_ips",
    "trusted_proxies",
    "webhook_success_statuses",
    "reconcile_columns",
    "display_timezone",
    "display_locale",
    "pg_host",
    "pg_real_host",
    "pg_port",
    "pg_database",
    "pg_schema",
    "pg_user",
    "pg_password",
];

/// The forms figment's own env provider changed: leading zeros, signs, decimals,
/// quotes, brackets, booleans, padding, exponents, TOML-looking tables.
const ODD_FORMS: &[&str] = &[
    "000000123456",
    "+5",
    "12.50",
    "\"quoted\"",
    "'single'",
    "[a,b]",
    "{a=1}",
    " padded ",
    "1e3",
    "0x10",
    "-0",
    "true",
    "12345",
    "",
];

#[test]
fn every_text_and_secret_key_is_read_verbatim_from_the_environment() {
    for key in TEXT_KEYS {
        assert!(KEYS.contains(key), "{key}");
        for form in ODD_FORMS {
            Jail::expect_with(|jail| {
                jail.set_env(key.to_uppercase(), form);
                let raw: RawConfig = figment(None).extract().map_err(|e| e.to_string())?;
                let json = serde_json::to_value(&raw).unwrap();
                let got = match &json[key] {
                    serde_json::Value::Array(items) => items[0].as_str().map(str::to_owned),
                    v => v.as_str().map(str::to_owned),
                };
                assert_eq!(got.as_deref(), Some(*form), "{key}={form:?}");
                Ok(())
            });
        }
    }
    // Every other key is typed: it refuses text, so none was forgotten above.
    for key in KEYS.iter().filter(|k| !TEXT_KEYS.contains(k)) {
        Jail::expect_with(|jail| {
            jail.set_env(key.to_uppercase(), "some text");
            assert!(figment(None).extract::<RawConfig>().is_err(), "{key}");
            Ok(())
        });
    }
}

#[test]
fn odd_forms_of_secrets_survive_validation() {
    for form in [
        "000000123456",
        "+5555555555555",
        "12.50000000000",
        "\"quoted-secret\"",
        "[a,b]-long-secret",
    ] {
        Jail::expect_with(|jail| {
            jail.set_env("HTTP_AUTH_USERNAME", "qiwi");
            jail.set_env("HTTP_AUTH_PASSWORD", form);
            jail.set_env("ADMIN_PASSWORD", form);
            jail.set_env("METRICS_TOKEN", form);
            let c = load(None).unwrap();
            assert_eq!(c.qiwi.http_auth.unwrap().password.0, form);
            assert_eq!(c.admin.password.unwrap().0, form);
            assert_eq!(c.ops.metrics_token.unwrap().0, form);
            Ok(())
        });
    }
}

#[test]
fn typed_keys_from_the_environment_still_parse_and_errors_say_the_fix() {
    Jail::expect_with(|jail| {
        jail.set_env("CHECK_TIMEOUT_SECS", "7");
        jail.set_env("PAYMENTS_ENABLED", "false");
        jail.set_env("WEBHOOK_MAX_ATTEMPTS", "3");
        let c = load(None).unwrap();
        assert_eq!(c.check.timeout, Duration::from_secs(7));
        assert!(!c.qiwi.payments_enabled);
        assert_eq!(c.webhook.max_attempts, Some(3));
        Ok(())
    });
    let m = error_of(|j| {
        j.set_env("PAYMENTS_ENABLED", "1");
        Ok(None)
    });
    assert_eq!(
        m,
        "invalid `payments_enabled` (env PAYMENTS_ENABLED): `1` is not a boolean: use true or false"
    );
    let m = error_of(|j| {
        j.set_env("PAYMENTS_ENABLED", "yes");
        Ok(None)
    });
    assert!(
        m.contains("`yes` is not a boolean: use true or false"),
        "{m}"
    );
    let m = error_of(|j| {
        j.set_env("CHECK_TIMEOUT_SECS", "+5");
        Ok(None)
    });
    assert!(m.contains("`+5` is not a whole number"), "{m}");
    let m = error_of(|j| {
        j.create_file("c.toml", "payments_enabled = \"yes\"")?;
        Ok(Some("c.toml"))
    });
    assert!(
        m.contains("(file c.toml)") && m.contains("use true or false"),
        "{m}"
    );
}

#[test]
fn errors_name_the_real_source_of_the_value() {
    let m = error_of(|j| {
        j.create_file("c.toml", "min_sum = \"abc\"")?;
        Ok(Some("c.toml"))
    });
    assert!(m.contains("invalid `min_sum` (file c.toml)"), "{m}");
    assert!(!m.contains("env"), "{m}");
    let m = error_of(|j| {
        j.create_file("c.toml", "min_sum = \"5\"")?;
        j.set_env("MIN_SUM", "abc");
        Ok(Some("c.toml"))
    });
    assert!(m.contains("invalid `min_sum` (env MIN_SUM)"), "{m}");
    let m = error_of(|j| {
        j.create_file("c.toml", "check_timeout_secs = \"soon\"")?;
        Ok(Some("c.toml"))
    });
    assert!(m.contains("`check_timeout_secs` (file c.toml)"), "{m}");
}

#[test]
fn a_host_name_as_listen_addr_is_explained() {
    let m = error_of(|j| {
        j.set_env("LISTEN_ADDR", "localhost:8080");
        Ok(None)
    });
    assert!(
        m.contains("a host name is not accepted") && m.contains("127.0.0.1:8080"),
        "{m}"
    );
    let m = error_of(|j| {
        j.set_env("LISTEN_ADDR", "127.0.0.1");
        Ok(None)
    });
    assert!(m.contains("has no port"), "{m}");
    let m = error_of(|j| {
        j.set_env("LISTEN_ADDR", "127.0.0.1:http");
        Ok(None)
    });
    assert!(m.contains("is not a port"), "{m}");
}

#[test]
fn admin_password_follows_the_set_password_rule() {
    let m = error_of(|j| {
        j.set_env("ADMIN_PASSWORD", "x");
        Ok(None)
    });
    assert!(
        m.contains("admin_password") && m.contains("at least 12"),
        "{m}"
    );
    assert!(!m.contains("`x`"), "{m}");
    Jail::expect_with(|jail| {
        jail.set_env("ADMIN_PASSWORD", "twelve chars");
        assert!(load(None).is_ok());
        Ok(())
    });
}

#[test]
fn a_malformed_whsec_secret_is_refused_without_printing_it() {
    let m = error_of(|j| {
        j.set_env("WEBHOOK_SECRET", "whsec_not*base64!");
        Ok(None)
    });
    assert!(
        m.contains("webhook_secret") && m.contains("WEBHOOK_SECRET"),
        "{m}"
    );
    assert!(!m.contains("not*base64"), "{m}");
}

#[test]
fn secrets_are_not_printed() {
    Jail::expect_with(|jail| {
        jail.set_env("HTTP_AUTH_USERNAME", "u");
        jail.set_env("HTTP_AUTH_PASSWORD", "hunter2");
        jail.set_env("WEBHOOK_SECRET", "whsec-value");
        jail.set_env("METRICS_TOKEN", "metrics-tok3n");
        jail.set_env("ADMIN_PASSWORD", "admin-passw0rd-long");
        jail.set_env(
            "QIWI_WEBHOOK_URL",
            "http://hookuser:hookpass@h/hook?token=hooktok",
        );
        jail.set_env(
            "QIWI_CHECK_URL",
            "http://chkuser:chkpass@h/check?token=chktok#frag1",
        );
        let c = load(None).unwrap();
        let printed = format!("{c:?}");
        for secret in [
            "hunter2",
            "whsec-value",
            "metrics-tok3n",
            "admin-passw0rd-long",
            "hookuser",
            "hookpass",
            "hooktok",
            "chkuser",
            "chkpass",
            "chktok",
            "frag1",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(
            printed.contains("http://***:***@h/hook?token=***"),
            "{printed}"
        );
        Ok(())
    });
}

/// The sections print themselves (the configuration's `Debug` is theirs): each section's
/// secrets and URL credentials stay masked, the PostgreSQL password of `import-original` too.
#[test]
fn every_section_masks_its_own_secrets() {
    Jail::expect_with(|jail| {
        jail.set_env("PG_PASSWORD", "pg-passw0rd");
        jail.set_env("ADMIN_PASSWORD", "admin-passw0rd-long");
        jail.set_env("WEBHOOK_SECRET", "whsec-value");
        jail.set_env("QIWI_WEBHOOK_URL", "http://hookuser:hookpass@h/hook");
        jail.set_env("QIWI_CHECK_URL", "http://chkuser:chkpass@h/check");
        let c = load(None).unwrap();
        let printed = [
            format!("{:?}", c.ops),
            format!("{:?}", c.admin),
            format!("{:?}", c.webhook),
            format!("{:?}", c.check),
        ];
        for (section, secret) in [
            (0, "pg-passw0rd"),
            (1, "admin-passw0rd-long"),
            (2, "whsec-value"),
            (2, "hookpass"),
            (3, "chkpass"),
        ] {
            assert!(
                !printed[section].contains(secret),
                "{secret} in {}",
                printed[section]
            );
        }
        let all = format!("{c:?}");
        for section in ["server", "qiwi", "check", "webhook", "admin", "ops"] {
            assert!(all.contains(&format!("{section}: ")), "{section} in {all}");
        }
        Ok(())
    });
}

#[test]
fn settings_that_can_never_work_are_refused_in_one_line() {
    let with_user = |user: &'static str| {
        error_of(move |j| {
            j.set_env("HTTP_AUTH_USERNAME", user);
            j.set_env("HTTP_AUTH_PASSWORD", "a-long-password");
            Ok(None)
        })
    };
    // a Basic user name with `:` never matches (RFC 7617 section 2): every request 401
    let m = with_user("qiwi:shop");
    assert!(
        m.contains("invalid `http_auth_username` (env HTTP_AUTH_USERNAME)")
            && m.contains("RFC 7617")
            && m.contains("401"),
        "{m}"
    );
    // spaces at either end, and control characters, are refused too
    for user in ["qiwi ", " qiwi", "qiwi\t", "qiwi\r"] {
        let m = with_user(user);
        assert!(m.contains("`http_auth_username`"), "{user:?}: {m}");
        assert_eq!(m.lines().count(), 1, "{m}");
    }
    // the password: a control character (CRLF env file), said without printing it
    let m = error_of(|j| {
        j.set_env("HTTP_AUTH_USERNAME", "qiwi");
        j.set_env("HTTP_AUTH_PASSWORD", "hunter2-secret\r");
        Ok(None)
    });
    assert!(m.contains("`http_auth_password`"), "{m}");
    assert!(!m.contains("hunter2"), "the password is printed: {m}");
    // a space inside a user name is allowed (RFC 7617 forbids only `:` and controls)
    Jail::expect_with(|j| {
        j.set_env("HTTP_AUTH_USERNAME", "qiwi shop");
        j.set_env("HTTP_AUTH_PASSWORD", "a long password ");
        assert_eq!(
            load(None).unwrap().qiwi.http_auth.unwrap().username,
            "qiwi shop"
        );
        Ok(())
    });

    // min_sum below one kopeck: a pay of 0 would be stored and answered 0
    for (min, in_file) in [("0", false), ("0.00", false), ("0", true)] {
        let m = error_of(move |j| {
            if in_file {
                j.create_file("c.toml", &format!("min_sum = \"{min}\""))?;
                Ok(Some("c.toml"))
            } else {
                j.set_env("MIN_SUM", min);
                Ok(None)
            }
        });
        let origin = if in_file {
            "file c.toml"
        } else {
            "env MIN_SUM"
        };
        assert!(
            m.contains(&format!("invalid `min_sum` ({origin})")) && m.contains("0.01"),
            "{m}"
        );
    }
    Jail::expect_with(|j| {
        j.set_env("MIN_SUM", "0.01");
        assert_eq!(load(None).unwrap().qiwi.min_sum, Amount::from_minor(1));
        Ok(())
    });
}

#[test]
fn a_misspelled_environment_variable_is_named_with_the_key_it_resembles() {
    let set = [
        "MAX_SUMM",             // one letter too many
        "WEBHOK_SECRET",        // one letter missing
        "QIWI_WEBHOOK_ULR",     // two letters swapped: distance 2, a long name
        "HTTP_AUTH_USERNAM",    // long name, one letter missing
        "PGHOST",               // libpq's spelling of the original's PG_HOST
        "MAX_SUM",              // a key: fine
        "HTTP_MAX_CONNECTIONS", // a key: fine, though close to another key
        "HTTP_PROXY",           // reqwest's, not ours
        "HTTPS_PROXY",
        "SSL_CERT_FILE",
        "RUST_LOG",
        "HOME",
        "PATH",
        "HOSTNAME",
        "TZ",
        "LOG_FORMATS_DIR", // distance 5: unrelated
    ];
    assert_eq!(
        misspelled_env(&set),
        vec![
            (
                "HTTP_AUTH_USERNAM".to_owned(),
                "HTTP_AUTH_USERNAME".to_owned()
            ),
            ("MAX_SUMM".to_owned(), "MAX_SUM".to_owned()),
            ("PGHOST".to_owned(), "PG_HOST".to_owned()),
            ("QIWI_WEBHOOK_ULR".to_owned(), "QIWI_WEBHOOK_URL".to_owned()),
            ("WEBHOK_SECRET".to_owned(), "WEBHOOK_SECRET".to_owned()),
        ]
    );
    // Every key's own variable is never reported.
    let all: Vec<String> = KEYS.iter().map(|k| k.to_ascii_uppercase()).collect();
    assert!(misspelled_env(&all).is_empty());
}

#[test]
fn a_metrics_token_no_scraper_could_send_is_refused_without_printing_it() {
    for token in ["tok secret", " toksecret", "toksecret\r", "tok\tsecret"] {
        let m = error_of(move |j| {
            j.set_env("METRICS_TOKEN", token);
            Ok(None)
        });
        assert!(
            m.contains("invalid `metrics_token` (env METRICS_TOKEN)") && m.contains("RFC 6750"),
            "{token:?}: {m}"
        );
        assert!(!m.contains("secret"), "the token is printed: {m}");
        assert_eq!(m.lines().count(), 1, "{m}");
    }
    Jail::expect_with(|j| {
        j.set_env("METRICS_TOKEN", "abc-DEF_123.~+/=");
        assert!(load(None).unwrap().ops.metrics_token.is_some());
        Ok(())
    });
}
