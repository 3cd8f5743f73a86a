//! One module per scenario; each returns its JSON summary and the latency recorders that
//! `--out` writes.

pub mod baseline;
pub mod burst;
pub mod connections;
pub mod fanout;
pub mod offline;
pub mod overload;
pub mod sdk;
pub mod send;

use std::path::PathBuf;

use clap::Args;

use crate::target::TargetArgs;

/// Options every scenario against Missive takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write the latency histograms (`.hgrm`), a latency-over-time SVG and the summary here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds of bare-HTTP baseline measured in the same run, first (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub baseline_secs: f64,
}
