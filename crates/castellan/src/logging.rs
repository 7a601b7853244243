//! Log set-up: human-readable by default, JSON lines with `--log-format json`, both on
//! stderr so that stdout carries only command output (plans, reports).

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` is used when not given.
    #[arg(long, global = true)]
    pub log: Option<String>,
}

/// Installs the global subscriber. Called once, by `main`. `default` is the filter used
/// when neither `--log` nor `RUST_LOG` says otherwise.
pub fn init(args: &LogArgs, default: &str) {
    let filter = args
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
