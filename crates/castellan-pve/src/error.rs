//! The client's error type and the mapping from Proxmox VE error responses to it.
//!
//! PVE reports errors in two shapes (pve-http-server, `PVE::APIServer::Formatter::Standard`
//! and `PVE::APIServer::AnyEvent::handle_api2_request`):
//!
//! - parameter errors: status 400, body `{"data":null,"errors":{"param":"text"},
//!   "message":"Parameter verification failed.\n"}`;
//! - everything else a handler `die`s with: status 500 (or the code of a `PVE::Exception`), the
//!   text in the HTTP status line (`HTTP/1.1 500 CT is locked (backup)`) and, since
//!   pve-http-server 4.x, also in the body's `message`. Older nodes and some proxied paths send
//!   only the status line, so the reason phrase is the fallback.
//!
//! Handlers phrase the errors the client has to tell apart like this (pve-guest-common
//! `PVE::AbstractConfig`, pve-common `PVE::Tools::lock_file_full`, qemu-server / pve-container
//! API modules):
//!
//! - `CT is locked (backup)` / `VM is locked (migrate)` — `check_lock` (callers sometimes add the vmid);
//! - `can't lock file '/var/lock/lxc/pve-config-101.lock' - got timeout` — config flock;
//! - `Configuration file 'nodes/pve/qemu-server/100.conf' does not exist` — guest gone;
//! - `detected modified configuration - file changed by other user? Try again.` — digest.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything that can go wrong talking to a Proxmox VE node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error not covered by a more specific variant.
    #[error(
        "proxmox api request failed with status {status}: {message}{}",
        fmt_errors(errors)
    )]
    Api {
        /// HTTP status code.
        status: u16,
        /// The error text (body `message`, else the HTTP reason phrase), trimmed.
        message: String,
        /// Per-parameter errors of a 400 "Parameter verification failed." response.
        errors: BTreeMap<String, String>,
    },
    /// The token was rejected (401) or lacks a privilege (403).
    #[error("proxmox api authentication failed with status {status}: {message}")]
    Auth {
        /// HTTP status code (401 or 403).
        status: u16,
        /// The error text.
        message: String,
    },
    /// The guest carries a lock (`CT 101 is locked (backup)`). Retried by the client.
    #[error("guest is locked: {message}")]
    Locked {
        /// The error text, naming the lock.
        message: String,
    },
    /// The config file lock could not be taken in time (`can't lock file ... got timeout`).
    /// Retried by the client.
    #[error("timed out waiting for a config lock: {message}")]
    LockTimeout {
        /// The error text, naming the lock file.
        message: String,
    },
    /// The guest (or task) does not exist, for example because it was destroyed mid-flight.
    #[error("not found: {message}")]
    NotFound {
        /// The error text.
        message: String,
    },
    /// The config changed since its digest was read. Not retried: re-read and re-plan.
    #[error("guest config changed since it was read (digest mismatch): re-read and re-plan")]
    DigestMismatch,
    /// A task finished with an exit status other than `OK` or `WARNINGS: N`.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed {
        /// The task's UPID.
        upid: String,
        /// The task's exit status, which is its error text.
        exitstatus: String,
    },
    /// A task was still running when [`crate::WaitOptions::timeout`] ran out.
    #[error("timed out waiting for task {upid}")]
    TaskTimeout {
        /// The task's UPID.
        upid: String,
    },
    /// The request could not be sent or the response not received.
    #[error("transport error: {0}")]
    Transport(String),
    /// The TLS handshake failed: untrusted certificate, fingerprint mismatch, bad signature.
    #[error("tls error: {0}")]
    Tls(String),
    /// A response could not be decoded into the expected shape.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was being decoded (for example `guest config of lxc 101`).
        what: String,
        /// What was wrong with it.
        message: String,
    },
    /// Invalid client configuration or call arguments; nothing was sent.
    #[error("{0}")]
    Config(String),
}

fn fmt_errors(errors: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in errors.iter().enumerate() {
        let sep = if i == 0 { " (" } else { "; " };
        let _ = write!(out, "{sep}{k}: {}", v.trim());
    }
    if !errors.is_empty() {
        out.push(')');
    }
    out
}

impl Error {
    /// Whether retrying the same request later may succeed: lock conflicts, transport
    /// failures and gateway-type statuses (502, 503, 504, and PVE's proxy errors 595/596).
    ///
    /// The client itself retries lock conflicts for every request, but transport failures
    /// only for idempotent (GET) requests: a POST that timed out may have happened.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Locked { .. } | Error::LockTimeout { .. } | Error::Transport(_) => true,
            Error::Api { status, .. } => matches!(status, 502 | 503 | 504 | 595 | 596),
            _ => false,
        }
    }

    /// Whether this is a lock conflict: [`Error::Locked`], [`Error::LockTimeout`], or a task
    /// that failed because of one.
    pub fn is_lock(&self) -> bool {
        match self {
            Error::Locked { .. } | Error::LockTimeout { .. } => true,
            Error::TaskFailed { exitstatus, .. } => matches!(
                classify_message(exitstatus),
                Some(Kind::Locked | Kind::LockTimeout)
            ),
            _ => false,
        }
    }

    /// Whether the guest (or task) does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::TaskFailed { exitstatus, .. } => {
                matches!(classify_message(exitstatus), Some(Kind::NotFound))
            }
            _ => false,
        }
    }

    /// Whether the config changed since its digest was read, either reported directly or as
    /// the exit status of a config task.
    pub fn is_digest_mismatch(&self) -> bool {
        match self {
            Error::DigestMismatch => true,
            Error::TaskFailed { exitstatus, .. } => {
                matches!(classify_message(exitstatus), Some(Kind::DigestMismatch))
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Locked,
    LockTimeout,
    NotFound,
    DigestMismatch,
}

/// Recognises the PVE error texts the client treats specially, wherever they appear.
fn classify_message(message: &str) -> Option<Kind> {
    // pve-guest-common PVE::AbstractConfig::check_config_digest:
    // "detected modified configuration - file changed by other user? Try again.\n"
    // qemu-server's update_vm_api has its own check, spelled (sic):
    // "checksum missmatch (file change by other user?)\n"
    if message.contains("detected modified configuration")
        || message.contains("checksum missmatch (file change by other user?)")
    {
        return Some(Kind::DigestMismatch);
    }
    // pve-common PVE::Tools::lock_file_full: "can't lock file '$filename' - got timeout"
    // (the text after "can't lock file '...' - " is the flock error, "got timeout" when the
    // lock was held for the whole timeout).
    if message.contains("can't lock file") {
        return Some(Kind::LockTimeout);
    }
    // pve-guest-common PVE::AbstractConfig::check_lock: "CT is locked (backup)",
    // "VM is locked (migrate)" (the guest type, no vmid); some callers prefix the
    // vmid ("CT 101 is locked (backup)"), so both are recognised.
    if is_guest_locked(message) {
        return Some(Kind::Locked);
    }
    // pve-guest-common PVE::AbstractConfig::load_config (via cfs_read_file):
    // "Configuration file 'nodes/pve/lxc/101.conf' does not exist"; the LXC/QEMU API
    // modules also say "CT 101 does not exist" / "VM 100 does not exist" in places.
    if message.contains("does not exist") || message.starts_with("no such task") {
        return Some(Kind::NotFound);
    }
    None
}

fn is_guest_locked(message: &str) -> bool {
    let words: Vec<&str> = message.split_whitespace().collect();
    let typed = |w: &[&str]| matches!(w[0], "CT" | "VM");
    words
        .windows(3)
        .any(|w| typed(w) && w[1] == "is" && w[2] == "locked")
        || words.windows(4).any(|w| {
            typed(w)
                && !w[1].is_empty()
                && w[1].bytes().all(|b| b.is_ascii_digit())
                && w[2] == "is"
                && w[3] == "locked"
        })
}

/// Maps an error response to an [`Error`].
///
/// `message` is the best error text available (body `message`, else the reason phrase);
/// `errors` the body's per-parameter `errors` map.
pub(crate) fn from_response(
    status: u16,
    message: String,
    errors: BTreeMap<String, String>,
) -> Error {
    if status == 401 || status == 403 {
        return Error::Auth { status, message };
    }
    // A 400 with an errors map is a parameter error even if a parameter's text happens to
    // contain "does not exist" (for example a storage that does not exist).
    if errors.is_empty() {
        match classify_message(&message) {
            Some(Kind::DigestMismatch) => return Error::DigestMismatch,
            Some(Kind::LockTimeout) => return Error::LockTimeout { message },
            Some(Kind::Locked) => return Error::Locked { message },
            Some(Kind::NotFound) if status == 500 || status == 404 => {
                return Error::NotFound { message };
            }
            _ => {}
        }
        if status == 404 {
            return Error::NotFound { message };
        }
    }
    Error::Api {
        status,
        message,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, message: &str) -> Error {
        from_response(status, message.to_owned(), BTreeMap::new())
    }

    #[test]
    fn classifies_real_pve_messages() {
        assert!(matches!(
            check(500, "CT 101 is locked (backup)"),
            Error::Locked { .. }
        ));
        assert!(matches!(
            check(500, "VM 100 is locked (migrate)"),
            Error::Locked { .. }
        ));
        // check_lock's own words carry no vmid.
        assert!(matches!(
            check(500, "CT is locked (backup)"),
            Error::Locked { .. }
        ));
        assert!(matches!(
            check(500, "unable to restore VM 140 - VM is locked (create)"),
            Error::Locked { .. }
        ));
        assert!(matches!(
            check(
                500,
                "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"
            ),
            Error::LockTimeout { .. }
        ));
        assert!(matches!(
            check(
                500,
                "Configuration file 'nodes/pve/lxc/101.conf' does not exist"
            ),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            check(
                500,
                "detected modified configuration - file changed by other user? Try again."
            ),
            Error::DigestMismatch
        ));
        // qemu-server's wording for the same condition.
        assert!(matches!(
            check(500, "checksum missmatch (file change by other user?)"),
            Error::DigestMismatch
        ));
        assert!(matches!(
            check(401, "authentication failure"),
            Error::Auth { status: 401, .. }
        ));
        assert!(matches!(
            check(403, "Permission check failed (/vms/101, VM.PowerMgmt)"),
            Error::Auth { status: 403, .. }
        ));
        assert!(matches!(
            check(500, "CT 101 already running"),
            Error::Api { status: 500, .. }
        ));
        // "locked" alone, or "is locked" about something else, is not a guest lock.
        assert!(matches!(
            check(500, "storage is locked by someone"),
            Error::Api { .. }
        ));
    }

    #[test]
    fn parameter_errors_stay_api_errors() {
        let mut errors = BTreeMap::new();
        errors.insert(
            "rootfs".to_owned(),
            "storage 'nope' does not exist\n".to_owned(),
        );
        let e = from_response(400, "Parameter verification failed.".into(), errors);
        match &e {
            Error::Api { status, errors, .. } => {
                assert_eq!(*status, 400);
                assert!(errors.contains_key("rootfs"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "proxmox api request failed with status 400: Parameter verification failed. \
             (rootfs: storage 'nope' does not exist)"
        );
    }

    #[test]
    fn retryable_and_lock_predicates() {
        assert!(check(500, "CT 101 is locked (backup)").is_retryable());
        assert!(check(500, "can't lock file 'x' - got timeout").is_lock());
        assert!(!Error::DigestMismatch.is_retryable());
        assert!(Error::Transport("x".into()).is_retryable());
        assert!(check(595, "Connection refused").is_retryable());
        assert!(!check(500, "boom").is_retryable());
        let task = Error::TaskFailed {
            upid: "UPID:x".into(),
            exitstatus: "VM 100 is locked (backup)".into(),
        };
        assert!(task.is_lock());
        assert!(!task.is_retryable());
        let gone = Error::TaskFailed {
            upid: "UPID:x".into(),
            exitstatus: "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist".into(),
        };
        assert!(gone.is_not_found());
        let changed = Error::TaskFailed {
            upid: "UPID:x".into(),
            exitstatus: "detected modified configuration - file changed by other user? Try again."
                .into(),
        };
        assert!(changed.is_digest_mismatch());
    }
}
