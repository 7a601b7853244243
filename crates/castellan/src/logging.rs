//! Log set-up: human-readable by default, JSON lines with `--log-format json`, both on
//! stderr so that stdout carries only command output (plans, reports). Colours only on a
//! terminal.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// Changes the filter after start-up (see [`set_default_filter`]).
type Reload = Box<dyn Fn(&str) -> bool + Send + Sync>;

static RELOAD: OnceLock<Reload> = OnceLock::new();

/// Whether log lines on stderr get colours: only on a terminal, and not when `NO_COLOR` is
/// set (<https://no-color.org>). Piped or redirected logs stay plain text.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. Called once, by `main`. `default` is the filter used
/// when neither `--log` nor `RUST_LOG` says otherwise.
pub fn init(args: &LogArgs, default: &str) {
    let chosen = args
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok());
    let user_chose = chosen.is_some();
    let filter = chosen.unwrap_or_else(|| EnvFilter::new(default));
    let terminal = std::io::stderr().is_terminal();
    let ansi = use_colour(terminal, std::env::var_os("NO_COLOR").as_deref());
    // Human-readable logs on a terminal get a spinner for each wait on a node's task;
    // log lines are written around it.
    let writer = crate::progress::LogWriter::new(terminal && args.log_format == LogFormat::Text);
    let spinners = (terminal && args.log_format == LogFormat::Text).then(|| writer.spinners());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let reload: Reload = match args.log_format {
        LogFormat::Text => {
            let builder = builder.with_target(false).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.finish().with(spinners).init();
            Box::new(move |f| handle.reload(EnvFilter::new(f)).is_ok())
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.finish().with(spinners).init();
            Box::new(move |f| handle.reload(EnvFilter::new(f)).is_ok())
        }
    };
    if !user_chose {
        let _ = RELOAD.set(reload);
    }
}

/// Replaces the default filter (`castellan demo --keep` turns the agent's logs on once its
/// story is told). Does nothing when `--log` or `RUST_LOG` chose the filter.
pub fn set_default_filter(filter: &str) {
    if let Some(reload) = RELOAD.get() {
        reload(filter);
    }
}
