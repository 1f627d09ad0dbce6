//! The `qiwi-gateway` binary: parse the command line, load the configuration, start.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use qiwi_gateway::config::{self, Config};
use qiwi_gateway::db::{self, Db};
use qiwi_gateway::ops::LogFormat;
use qiwi_gateway::{app, ops};

#[derive(Parser)]
#[command(version, about = "QIWI terminal payments gateway")]
struct Cli {
    /// Configuration file (default: ./config.toml when it exists).
    #[arg(long, env = "CONFIG_FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve QIWI and the admin UI (the default).
    Serve,
    /// Validate the configuration and print every key's value (secrets masked) and source.
    CheckConfig,
    /// Create the database or bring its schema up to date, then exit.
    Migrate,
    /// Write a consistent copy of the database while the gateway keeps running.
    Backup {
        /// The copy to write (must not exist yet).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Make webhook deliveries due now: one transaction's, or every undelivered one.
    Resend(ResendArgs),
    /// Act as QIWI against a provider URL (check, pay, repeats, a malformed request) and
    /// report every answer against the protocol; exit 1 on any deviation.
    Simulate(SimulateArgs),
    /// Admin UI account commands.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Reconcile QIWI's payment registry FILE against the stored payments: print the report
    /// and store it (listed on the admin page). Exit 0 when they agree, 2 when they differ.
    Reconcile {
        /// The registry file (`;`, `,` or tab separated; UTF-8 or windows-1251).
        file: PathBuf,
    },
    /// Copy the original "Qiwi Terminal Payments" container's PostgreSQL data (PG_* settings)
    /// into this gateway's database, with the gateway stopped. See docs/migration.md.
    ImportOriginal(ImportArgs),
    /// Exit 0 when the gateway answers /healthz on its listen address, else 1.
    Healthcheck {
        /// How long to wait for the answer, in seconds.
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum AdminCmd {
    /// Set the admin password, read from the first line of standard input (e.g.
    /// `echo 'a long passphrase' | qiwi-gateway admin set-password`). Ends every session.
    SetPassword,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct ResendArgs {
    /// The transaction's id (`prv_txn`); sent again even if it was delivered.
    #[arg(long)]
    id: Option<i64>,
    /// Every transaction not yet delivered.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// Also copy the original's request log (qiwi_http_log).
    #[arg(long)]
    with_log: bool,
    /// Import into a database that already has payments: a txn_id on both sides with the
    /// same account and sum is skipped, with other data reported and not imported.
    #[arg(long)]
    merge: bool,
    /// Mark the original's undelivered payments (status 0) delivered instead of sending
    /// their webhooks (when the merchant's backend is known to have them).
    #[arg(long)]
    no_deliver: bool,
}

#[derive(Args)]
struct SimulateArgs {
    /// The provider's /payment URL, e.g. https://user:pass@pay.example.com/payment (the
    /// password is sent as Basic auth and never printed).
    #[arg(long)]
    url: url::Url,
    /// The account to check and pay: one the provider's backend knows is a test.
    #[arg(long, default_value = "test")]
    account: String,
    /// The sum to pay, e.g. 1 or 10.45.
    #[arg(long, default_value = "1.00", value_parser = parse_sum)]
    sum: qiwi_gateway::qiwi::Amount,
    /// The txn_id (default: the current time in milliseconds, so every run is a new payment).
    #[arg(long)]
    txn_id: Option<String>,
    /// How long to wait for each answer, in seconds (QIWI waits 60).
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

fn parse_sum(s: &str) -> Result<qiwi_gateway::qiwi::Amount, String> {
    qiwi_gateway::qiwi::Amount::parse(s).map_err(|e| e.to_string())
}

// Measured A/B with bench/load.lua at 64 connections: mimalloc serves ~20% more pays/s and
// ~10% more checks/s than glibc's malloc, for ~22 MiB more resident memory (54 vs 32 MiB).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qiwi-gateway: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined on one line, each said once: a cause whose text the line
/// already holds (a wrapper that prints its source and also returns it from `source()`) is
/// skipped; line breaks inside a message become spaces.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Logs go to stdout when serving (the container's log) and to stderr for the one-shot
/// commands, whose stdout is their answer.
fn init_logs(format: LogFormat, serving: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: a container's log is a file.
    let ansi = if serving {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match (format, serving) {
        (LogFormat::Text, true) => builder.init(),
        (LogFormat::Text, false) => builder.with_writer(std::io::stderr).init(),
        (LogFormat::Json, true) => builder.json().flatten_event(true).init(),
        (LogFormat::Json, false) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// The names of this process's environment variables (those that are valid UTF-8).
fn env_names() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = config::file_path(cli.config.as_deref());
    let command = cli.command.unwrap_or(Cmd::Serve);
    if let Cmd::CheckConfig = command {
        let (cfg, settings) = ops::cli::effective_config(file.as_deref())?;
        let checks = block_on(ops::cli::preflight(&cfg));
        print!(
            "{}",
            ops::cli::render_settings(file.as_deref(), &settings, &checks)
        );
        for (name, key) in config::misspelled_env(&env_names()) {
            println!("# {name} is set but is not a setting (ignored): did you mean {key}?");
        }
        if let Some(failed) = checks.iter().find(|c| c.problem.is_some()) {
            anyhow::bail!(
                "{}: {}",
                failed.what,
                failed.problem.as_deref().unwrap_or_default()
            );
        }
        return Ok(());
    }
    if let Cmd::Simulate(args) = command {
        // Needs no configuration: it talks to any provider, this gateway or another.
        return simulate(args);
    }
    let cfg = config::load(file.as_deref())?;
    if let Cmd::Healthcheck { timeout_secs } = command {
        // No logging set up: the container runtime keeps only the exit code and a line.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return rt.block_on(ops::cli::healthcheck(
            &cfg,
            Duration::from_secs(timeout_secs),
        ));
    }
    init_logs(cfg.ops.log_format, matches!(command, Cmd::Serve));
    for (name, key) in config::misspelled_env(&env_names()) {
        tracing::warn!(
            variable = %name,
            "{name} is set but is not a setting (ignored): did you mean {key}?"
        );
    }
    match command {
        Cmd::Serve => serve(cfg),
        Cmd::Migrate => {
            let path = cfg.ops.database_path.clone();
            // A running gateway (perhaps an older binary) must not see its schema change.
            let _lock = ops::lock::lock_database(&path)
                .map_err(|e| anyhow::anyhow!("migrate needs the gateway stopped: {e}"))?;
            let mut progress: Option<ops::progress::Progress> = None;
            let db = Db::open_with(&path, &mut |done, pending| {
                let p = progress.get_or_insert_with(|| {
                    ops::progress::Progress::start("migrate", pending as u64, "migrations")
                });
                p.set(done as u64);
            })?;
            if let Some(p) = progress {
                p.finish();
            }
            let version = block_on(db.read(db::maintenance::schema_version))?;
            println!("{}: schema version {version}", path.display());
            Ok(())
        }
        Cmd::Backup { to } => {
            let progress = std::sync::OnceLock::new();
            let info =
                db::maintenance::backup_watched(&cfg.ops.database_path, &to, &|done, total| {
                    progress
                        .get_or_init(|| ops::progress::Progress::bytes("backup", total))
                        .set(done);
                })?;
            // The copy's real size: the last look may be older than the end, and the copy can
            // end above the estimate. A copy too quick to be watched gets its closing line too.
            progress
                .into_inner()
                .unwrap_or_else(|| ops::progress::Progress::bytes("backup", info.bytes))
                .finish_at(info.bytes);
            println!(
                "backup written to {}: {} payments (last id {}), {} bytes",
                to.display(),
                info.transactions,
                info.last_transaction_id
                    .map_or_else(|| "none".to_owned(), |id| id.to_string()),
                info.bytes
            );
            Ok(())
        }
        Cmd::Resend(args) => resend(&cfg, args.id),
        Cmd::Admin(AdminCmd::SetPassword) => set_password(&cfg),
        Cmd::Reconcile { file } => reconcile(&cfg, file),
        Cmd::ImportOriginal(args) => {
            let opts = qiwi_gateway::import::Options {
                with_log: args.with_log,
                merge: args.merge,
                no_deliver: args.no_deliver,
            };
            let settings = qiwi_gateway::import::Settings {
                database_path: &cfg.ops.database_path,
                original_pg: &cfg.ops.original_pg,
                webhook_url: cfg.webhook.url.as_ref(),
            };
            qiwi_gateway::import::run(&settings, opts, &mut std::io::stdout())?;
            Ok(())
        }
        Cmd::CheckConfig | Cmd::Healthcheck { .. } | Cmd::Simulate(_) => {
            unreachable!("handled above")
        }
    }
}

/// `admin set-password`: the password comes from stdin, never from the command line (where
/// `ps` and the shell history would keep it).
fn set_password(cfg: &Config) -> anyhow::Result<()> {
    if cfg.admin.password.is_some() {
        // Storing it would change nothing but end every session: say which one wins instead.
        anyhow::bail!(
            "ADMIN_PASSWORD is set and wins over a stored password: change it where it is \
             set, or unset it and run admin set-password again"
        );
    }
    // A running gateway keeps the password it loaded at start: it must be stopped first.
    let _lock = ops::lock::lock_database(&cfg.ops.database_path).map_err(|e| {
        anyhow::anyhow!("admin set-password needs the gateway stopped (it keeps the password it started with): {e}")
    })?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    let db = Db::open(&cfg.ops.database_path)?;
    block_on(qiwi_gateway::admin::password::set_password(&db, password))?;
    block_on(qiwi_gateway::db::audit::record_cli(
        &db,
        "password-change",
        "admin set-password".to_owned(),
    ))?;
    println!("admin password changed; every session was ended");
    Ok(())
}

/// `reconcile FILE`: the same report as the admin page, printed, stored, and said by the exit
/// status (2 when the registry and the payments differ).
fn reconcile(cfg: &Config, file: PathBuf) -> anyhow::Result<()> {
    use qiwi_gateway::reconcile;
    if !cfg.ops.database_path.is_file() {
        anyhow::bail!("no database at {}", cfg.ops.database_path.display());
    }
    let db = Db::open(&cfg.ops.database_path)?;
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let columns = cfg.admin.reconcile_columns.clone();
    let (id, sha256, report) = block_on(reconcile::run(
        &db,
        reconcile::Source::File(file.clone()),
        name.clone(),
        columns,
    ))
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    print!(
        "{}",
        reconcile::render::text(&report, &file.display().to_string(), &sha256)
    );
    println!("stored as reconciliation {id}: /admin/reconcile/{id}");
    block_on(qiwi_gateway::db::audit::record_cli(
        &db,
        "reconcile",
        format!(
            "reconciliation {id} of “{name}”: {} difference(s)",
            report.summary.difference_count()
        ),
    ))?;
    if report.summary.difference_count() > 0 {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
    Ok(())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(f)
}

fn serve(cfg: Config) -> anyhow::Result<()> {
    // Held until serve returns (the kernel drops it on any exit): one gateway per database.
    let lock = ops::lock::lock_database(&cfg.ops.database_path)?;
    tracing::debug!(lock = %lock.path().display(), "database locked");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let state = app::AppState::new(cfg)?;
        let running = app::start(state, app::shutdown_signal()).await?;
        running.task.await??;
        Ok(())
    })
}

/// Makes deliveries due. A running gateway picks them up at its next look at the queue.
fn resend(cfg: &Config, id: Option<i64>) -> anyhow::Result<()> {
    if !cfg.ops.database_path.is_file() {
        anyhow::bail!("no database at {}", cfg.ops.database_path.display());
    }
    let db = Db::open(&cfg.ops.database_path)?;
    let n = if id.is_none() {
        block_on(async {
            let total = db.undelivered().await?;
            let progress = ops::progress::Progress::start("resend", total, "payments");
            let n = db
                .make_due_watched(None, &mut |n| progress.inc(n as u64))
                .await?;
            progress.finish();
            Ok::<_, db::DbError>(n)
        })?
    } else {
        block_on(db.make_due(id))?
    };
    match id {
        Some(id) if n == 0 => anyhow::bail!("no transaction with id {id}"),
        Some(id) => println!("transaction {id}: webhook delivery due now"),
        None => println!("{n} undelivered transactions: webhook delivery due now"),
    }
    Ok(())
}

/// `simulate`: prints the report on stdout; any deviation is an error (exit 1).
fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let opts = ops::simulate::Options {
        url: args.url,
        account: args.account,
        sum: args.sum,
        txn_id: args.txn_id.unwrap_or_else(ops::simulate::fresh_txn_id),
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let report = block_on(ops::simulate::run(&opts))?;
    print!("{}", report.render());
    if !report.ok() {
        anyhow::bail!("the provider deviates from the QIWI protocol (see above)");
    }
    Ok(())
}
