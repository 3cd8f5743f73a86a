//! `missive-bench`: the load generator and benchmark driver for Missive.
//!
//! Each subcommand is one scenario of issue 5 (`send`, `fanout`, `connections`, `offline`,
//! `sdk`, `baseline`), issue 6 (`overload`) or issue 12 (`burst`); it drives a running
//! Missive by URL and app credentials or, by
//! default, starts one with a temporary data directory, shows a progress bar on stderr
//! while it runs, and prints a one-line JSON summary on stdout when done. `--out DIR`
//! also writes the latency histograms and a latency-over-time plot. See docs/benchmarks.md.
//!
//! # Layout
//! - [`target`]: the server under test (started child process or external), its CPU and memory.
//! - [`load`]: HTTP senders, closed and open loop. [`http`]: the bare keep-alive client.
//! - [`setup`]: users, tokens, MSYNC logins and the receivers that timestamp deliveries.
//! - [`report`]: latency recorders, the JSON summary, `.hgrm` files and SVG plots.
//! - [`probe`]: the `/health` probe that watches a server under load from its own thread.
//! - [`procfs`]: `/proc` readings and the periodic sampler. [`scenario`]: one module per
//!   subcommand. [`sink`]: the callback receiver of `send --callback`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod http;
mod load;
mod probe;
mod procfs;
mod report;
mod scenario;
mod setup;
mod sink;
mod target;

use scenario::{baseline, burst, connections, fanout, offline, overload, sdk, send};

#[derive(Parser)]
#[command(name = "missive-bench", about = "Load generator and benchmarks for Missive", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// REST sends (one recipient each) to users online over MSYNC: throughput and latency.
    Send(send::SendArgs),
    /// Sends offered at twice the sustainable rate: shedding, health, memory, deliveries.
    Overload(overload::OverloadArgs),
    /// Registrations, password logins and image uploads in bursts, with the default Argon2
    /// cost: the server's memory peak and how soon it returns (issue 12).
    Burst(burst::BurstArgs),
    /// Calls with up to 600 online recipients: deliveries per CPU-second, call completion.
    Fanout(fanout::FanoutArgs),
    /// Idle authenticated MSYNC sessions: memory per session, login rate; soak options.
    Connections(connections::ConnectionsArgs),
    /// Messages queued for offline users, then drained on login.
    Offline(offline::OfflineArgs),
    /// Client-to-client messages over MSYNC (upload → ack → peer receives).
    Sdk(sdk::SdkArgs),
    /// The same HTTP senders against a trivial axum handler: the stack's own ceiling.
    Baseline(baseline::BaselineArgs),
    /// The trivial handler `baseline` measures (started by it as a child process).
    #[command(hide = true)]
    ServeBaseline {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// A Missive server from the linked library, for when no `missive` binary is beside
    /// this one (started as a child process; prints the demo app's credentials).
    #[command(hide = true)]
    ServeMissive {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Both the generator and the servers it starts use the multi-threaded runtime with one
    // worker per core, like `missive serve`.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let (name, out, result) = match cli.command {
            Command::ServeBaseline { listen } => return baseline::serve(listen).await,
            Command::ServeMissive { listen, data } => return serve_missive(listen, data).await,
            Command::Send(a) => ("send", a.common.out.clone(), send::run(a).await),
            Command::Overload(a) => ("overload", a.common.out.clone(), overload::run(a).await),
            Command::Burst(a) => ("burst", a.common.out.clone(), burst::run(a).await),
            Command::Fanout(a) => ("fanout", a.common.out.clone(), fanout::run(a).await),
            Command::Connections(a) => ("connections", a.common.out.clone(), connections::run(a).await),
            Command::Offline(a) => ("offline", a.common.out.clone(), offline::run(a).await),
            Command::Sdk(a) => ("sdk", a.common.out.clone(), sdk::run(a).await),
            Command::Baseline(a) => ("baseline", a.out.clone(), baseline::run(a).await),
        };
        let (summary, recorders) = result?;
        if let Some(dir) = out {
            let refs: Vec<(&str, &report::Recorder)> = recorders.iter().map(|(l, r)| (l.as_str(), r)).collect();
            report::write_outputs(&dir, name, &refs, &summary)?;
        }
        report::emit(&summary);
        Ok(())
    })
}

/// `serve-missive`: what `missive serve` does, from the same library.
async fn serve_missive(listen: SocketAddr, data: PathBuf) -> anyhow::Result<()> {
    use missive_server::{Config, app_credentials_json, create_app, open_store, run};
    let filter = tracing_subscriber::EnvFilter::try_from_env("MISSIVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let mut config = Config::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.listen = listen;
    config.data = data;
    let store = open_store(&config).await?;
    let app = create_app(&*store, "demo", "demo", false).await?;
    println!("{}", app_credentials_json(&app));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    run(config, store.shared(), listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
