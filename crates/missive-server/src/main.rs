//! The `missive` binary: parses the command line and hands off to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use missive_server::config::LogConfig;
use missive_server::{
    Config, StorageUrl, StoreHandle, app_credentials_json, create_app, lock_data_dir, open_store, run,
};

mod notify_cli;
mod terminal;

/// jemalloc rather than glibc's malloc: after a burst (registrations, logins, uploads) glibc
/// kept tens of MB in its per-thread arenas indefinitely; jemalloc with a background thread
/// gives freed pages back within its decay time (10 s). Measured in docs/reliability.md,
/// "Bursts" (glibc, glibc with `MALLOC_*` tuning, mimalloc, jemalloc).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc purges freed pages only when some thread allocates; an idle server after a
/// burst would keep them. One background thread purges on time.
fn return_freed_memory() {
    #[cfg(not(target_env = "msvc"))]
    {
        let _ = tikv_jemalloc_ctl::max_background_threads::write(1);
        if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
            tracing::warn!(%e, "jemalloc background thread not started: freed memory returns more slowly");
        }
    }
}

#[derive(Parser)]
#[command(name = "missive", version, about = "A self-hosted, Easemob-compatible instant-messaging server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives; shared by every subcommand that opens the store.
#[derive(clap::Args, Clone)]
struct StoreArgs {
    /// Data directory: the embedded SQLite database, uploaded files (local backend) and the
    /// lock that keeps two servers off one directory.
    #[arg(long, env = "MISSIVE_DATA")]
    data: Option<PathBuf>,
    /// The store: empty or sqlite://PATH for the embedded default, postgres://user@host:port/db
    /// for PostgreSQL (config `storage.url`).
    #[arg(long, env = "MISSIVE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl StoreArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref()).context("loading configuration")?;
        if let Some(d) = &self.data {
            config.data = d.clone();
        }
        if let Some(url) = &self.database_url {
            config.storage.url = url.clone();
        }
        Ok(config)
    }
}

/// `backup`/`restore` are the embedded store's; PostgreSQL has its own tools.
const PG_BACKUP_HELP: &str = "the PostgreSQL store is backed up with PostgreSQL's own tools: \
     `pg_dump --format=custom --file=missive.dump DBNAME` while Missive runs, and \
     `pg_restore --clean --dbname=DBNAME missive.dump` with every node stopped (docs/operations.md)";

#[derive(Subcommand)]
enum Command {
    /// Run the server (REST API and /websocket on one listener).
    Serve {
        /// Listen address.
        #[arg(long, env = "MISSIVE_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// NATS server(s) linking the nodes of a cluster (config `cluster.nats_url`).
        #[arg(long, env = "MISSIVE_NATS_URL", hide_env_values = true)]
        nats_url: Option<String>,
        /// This node's id, 0-1023 (config `node_id`); on PostgreSQL checked against the leases
        /// of the live nodes.
        #[arg(long, env = "MISSIVE_NODE_ID")]
        node_id: Option<u16>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Manage apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Write a consistent copy of the live database to FILE (safe while the server runs).
    Backup {
        /// Where to write the backup (must not exist).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace the database with a backup (the server must be stopped).
    Restore {
        /// A file written by `missive backup`.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Log in as a user and print every message it receives, one JSON line each.
    Listen {
        #[command(flatten)]
        connect: terminal::Connect,
    },
    /// Log in as a user and send each line typed to PEER; print what arrives.
    Chat {
        #[command(flatten)]
        connect: terminal::Connect,
        /// The user to talk to.
        peer: String,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app and print its credentials as one JSON object.
    Create {
        org: String,
        app: String,
        /// Allow unauthenticated user registration.
        #[arg(long)]
        open_registration: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Post-send callback rules (docs/callbacks.md).
    Callback {
        #[command(subcommand)]
        command: notify_cli::CallbackCommand,
    },
    /// Pre-send callback rules (docs/callbacks.md).
    Presend {
        #[command(subcommand)]
        command: notify_cli::PresendCommand,
    },
    /// Push providers (docs/push.md).
    Push {
        #[command(subcommand)]
        command: notify_cli::PushCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration file.
    Example,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `serve` logs as its configuration says (`[log]`); the one-shot commands as text. A
    // configuration that does not load is reported by `serve` itself, just below.
    let log = match &cli.command {
        Command::Serve { store, .. } => store.load().map(|c| c.log).unwrap_or_default(),
        _ => LogConfig::default(),
    };
    missive_server::telemetry::logs::init(&log);
    return_freed_memory();
    missive_server::install_crypto_provider();
    match cli.command {
        Command::Serve { listen, nats_url, node_id, store } => serve(listen, nats_url, node_id, store).await,
        Command::App { command: AppCommand::Create { org, app, open_registration, store } } => {
            let config = store.load()?;
            let db = open_store(&config).await?;
            let app = create_app(&*db, &org, &app, open_registration || config.security.open_registration).await?;
            println!("{}", app_credentials_json(&app));
            db.close().await;
            Ok(())
        }
        Command::App { command: AppCommand::Callback { command } } => notify_cli::callback(command).await,
        Command::App { command: AppCommand::Presend { command } } => notify_cli::presend(command).await,
        Command::App { command: AppCommand::Push { command } } => notify_cli::push(command).await,
        Command::Backup { file, store } => {
            let config = store.load()?;
            if let StorageUrl::Postgres(_) = config.storage_url().map_err(anyhow::Error::msg)? {
                anyhow::bail!("missive backup: {PG_BACKUP_HELP}");
            }
            anyhow::ensure!(!file.exists(), "{} already exists", file.display());
            let db = open_store(&config).await?;
            let StoreHandle::Sqlite(sqlite) = &db else { anyhow::bail!("missive backup: {PG_BACKUP_HELP}") };
            sqlite.backup_to(&file).await.context("writing backup")?;
            db.close().await;
            eprintln!("backup written to {}", file.display());
            Ok(())
        }
        Command::Restore { file, store } => {
            let config = store.load()?;
            let StorageUrl::Sqlite(path) = config.storage_url().map_err(anyhow::Error::msg)? else {
                anyhow::bail!("missive restore: {PG_BACKUP_HELP}")
            };
            let _lock = lock_data_dir(&config)?;
            missive_store::restore(&file, &path).context("restoring")?;
            eprintln!("restored {} into {}", file.display(), path.display());
            Ok(())
        }
        Command::Listen { connect } => terminal::listen(connect).await,
        Command::Chat { connect, peer } => terminal::chat(connect, peer).await,
        Command::Config { command: ConfigCommand::Example } => {
            print!("{}", Config::example());
            Ok(())
        }
    }
}

async fn serve(
    listen: Option<std::net::SocketAddr>,
    nats_url: Option<String>,
    node_id: Option<u16>,
    args: StoreArgs,
) -> anyhow::Result<()> {
    let mut config = args.load()?;
    if let Some(l) = listen {
        config.listen = l;
    }
    if let Some(url) = nats_url {
        config.cluster.nats_url = url;
    }
    if node_id.is_some() {
        config.node_id = node_id;
    }
    let _lock = lock_data_dir(&config)?;
    let store = open_store(&config).await?;
    if store.app_count().await? == 0 {
        let app = create_app(&*store, "demo", "demo", config.security.open_registration).await?;
        // Printed once, on the first start, so a newcomer can call the API right away.
        println!("{}", app_credentials_json(&app));
        tracing::info!("created app demo/demo; its credentials are printed above (shown only once)");
    }
    let listener = bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        data = %config.data.display(),
        store = %missive_server::config::redact_url(if config.storage.url.is_empty() { "sqlite (embedded)" } else { &config.storage.url }),
        "missive listening"
    );
    run(config, store.shared(), listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Connections waiting to be accepted before the kernel drops SYNs (capped by
/// `net.core.somaxconn`). tokio's default is 1,024; when a node restarts, every client it
/// held reconnects at once, and a dropped SYN costs its client a 1–3 s retransmit.
const LISTEN_BACKLOG: u32 = 8192;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As std's bind does: a restarted server can take its port while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
