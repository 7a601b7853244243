//! The desired-state file, polled for changes. Polling (a `stat` per interval, a read
//! only when size or mtime changed) is cheap, survives editors that replace the file by
//! rename, and keeps the idle agent near 0% CPU.
//!
//! A new version that does not parse, or names another node, is refused with an error in
//! the log and the previous desired state stays in force: bad input changes nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use castellan_core::{DesiredState, parse_desired};
use thiserror::Error;
use tokio::sync::watch;

/// Why a desired-state file was refused.
#[derive(Debug, Error)]
pub enum DesiredFileError {
    /// Not readable.
    #[error("cannot read desired state {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid.
    #[error("desired state {path} refused: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        source: castellan_core::DesiredError,
    },
    /// For another node.
    #[error("desired state {path} is for node {found:?}, this agent manages {expected:?}")]
    WrongNode {
        /// The file.
        path: PathBuf,
        /// The node the agent manages.
        expected: String,
        /// The node the file names.
        found: String,
    },
}

/// Reads and validates a desired-state file for `node`.
pub fn load_desired(path: &Path, node: &str) -> Result<DesiredState, DesiredFileError> {
    let (_, desired) = read_desired(path)?;
    if desired.node != node {
        return Err(DesiredFileError::WrongNode {
            path: path.to_owned(),
            expected: node.to_owned(),
            found: desired.node,
        });
    }
    Ok(desired)
}

/// Reads and validates a desired-state file, whatever node it names; returns its text
/// and what it declares.
pub fn read_desired(path: &Path) -> Result<(String, DesiredState), DesiredFileError> {
    let meta = std::fs::metadata(path).map_err(|source| DesiredFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > castellan_core::desired::MAX_FILE_BYTES as u64 {
        return Err(DesiredFileError::Invalid {
            path: path.to_owned(),
            source: castellan_core::DesiredError::TooLarge(meta.len() as usize),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| DesiredFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let desired = parse_desired(&text).map_err(|source| DesiredFileError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok((text, desired))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches `path` every `interval` and publishes each valid new version. Returns when
/// every receiver is gone.
pub async fn watch_desired(
    path: PathBuf,
    node: String,
    interval: Duration,
    tx: watch::Sender<Arc<DesiredState>>,
) {
    // No stamp yet: the first tick reads the file once, so an edit made between the
    // caller's initial load and this task's start is not lost (nothing is published when
    // the content is what the receivers already have).
    let mut last = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            return;
        }
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match load_desired(&path, &node) {
            Ok(d) => {
                if **tx.borrow() != d {
                    tracing::info!(event = "desired_state_loaded", guests = d.guests.len(), path = %path.display());
                    let _ = tx.send(Arc::new(d));
                }
            }
            Err(e) => {
                tracing::error!(event = "desired_state_refused", error = %e, "keeping the previous desired state")
            }
        }
    }
}
