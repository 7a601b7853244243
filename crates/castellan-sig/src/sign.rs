//! Signing with the real `ssh-keygen -Y sign`, so that every key OpenSSH can sign with
//! works: a private key file (ssh-keygen prompts for its passphrase on the terminal), or a
//! public key whose private half is held by the ssh-agent at `SSH_AUTH_SOCK` (agent-held
//! and FIDO security keys).
//!
//! [`sign_file`] copies the file into a fresh temporary directory beside it, runs
//! `ssh-keygen -Y sign -f KEY -n NAMESPACE FILE` there, and links the resulting signature
//! into place as `FILE.sig`, or `FILE.2.sig`, `FILE.3.sig`, ... when that exists. An
//! existing signature is never overwritten and ssh-keygen never sees one (so its own
//! handling of an existing `.sig` cannot interfere), and the new signature appears whole
//! or not at all. Several operators can therefore sign the same file in the same place.
//!
//! Nothing here reads the key: castellan never handles private key material or
//! passphrases. On failure, ssh-keygen's own diagnostics (which contain no secrets) are
//! passed through.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How many `FILE.N.sig` names are tried before giving up.
const MAX_SIGNATURE_SLOTS: u32 = 1000;

/// How to sign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignOptions {
    /// A private key file, or a `.pub` file whose private key is in the ssh-agent.
    pub key: PathBuf,
    /// The ssh-agent socket for ssh-keygen (`SSH_AUTH_SOCK`); `None` inherits ours.
    pub agent_socket: Option<PathBuf>,
    /// The `ssh-keygen` binary; `None` finds it on `PATH`.
    pub ssh_keygen: Option<PathBuf>,
    /// Copy ssh-keygen's stderr to ours as it runs (its prompts, e.g. "Confirm user
    /// presence" for security keys). It is captured for errors either way.
    pub echo_stderr: bool,
}

impl SignOptions {
    /// Options to sign with `key`, everything else default.
    pub fn new(key: impl Into<PathBuf>) -> Self {
        Self {
            key: key.into(),
            ..Self::default()
        }
    }
}

/// Why signing failed. Never contains key material or passphrases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// No `ssh-keygen` on `PATH` (or at the given path).
    #[error("ssh-keygen not found{}: install OpenSSH (e.g. the openssh-client package)", .0.as_deref().map(|p| format!(" at {}", p.display())).unwrap_or_else(|| " on PATH".into()))]
    SshKeygenNotFound(Option<PathBuf>),
    /// The namespace is empty or not a single printable word.
    #[error("invalid signature namespace {0:?}: expected a non-empty printable word")]
    BadNamespace(String),
    /// The key file does not exist.
    #[error("{}: key file not found", .0.display())]
    KeyNotFound(PathBuf),
    /// The file to sign is not a readable regular file.
    #[error("{}: cannot sign: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// ssh-keygen failed; its stderr is passed through.
    #[error("ssh-keygen -Y sign failed ({status}): {stderr}")]
    Failed {
        /// The exit status.
        status: String,
        /// ssh-keygen's stderr.
        stderr: String,
    },
    /// Every name up to `FILE.1000.sig` is taken.
    #[error("{}: no free signature file name (tried up to .{MAX_SIGNATURE_SLOTS}.sig)", .0.display())]
    NoFreeName(PathBuf),
}

/// Finds an executable `ssh-keygen` on `PATH`.
pub fn find_ssh_keygen() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ssh-keygen"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// The name the `n`th signature of `file` gets: `FILE.sig`, then `FILE.2.sig`, ...
pub fn signature_path(file: &Path, n: u32) -> PathBuf {
    let mut name = file.file_name().map(OsString::from).unwrap_or_default();
    if n <= 1 {
        name.push(".sig");
    } else {
        name.push(format!(".{n}.sig"));
    }
    file.with_file_name(name)
}

/// Signs `file` under `namespace` with `ssh-keygen -Y sign`; returns the signature's
/// path (`FILE.sig`, or the first free `FILE.N.sig`). See the module documentation.
pub fn sign_file(opts: &SignOptions, namespace: &str, file: &Path) -> Result<PathBuf, SignError> {
    if namespace.is_empty() || !namespace.chars().all(|c| c.is_ascii_graphic()) {
        return Err(SignError::BadNamespace(namespace.to_owned()));
    }
    let ssh_keygen = match &opts.ssh_keygen {
        Some(p) if is_executable(p) => p.clone(),
        Some(p) => return Err(SignError::SshKeygenNotFound(Some(p.clone()))),
        None => find_ssh_keygen().ok_or(SignError::SshKeygenNotFound(None))?,
    };
    // ssh-keygen runs in the temporary directory, so the key path must not be relative.
    let key = std::path::absolute(&opts.key).map_err(|source| SignError::Io {
        what: "cannot resolve key path",
        path: opts.key.clone(),
        source,
    })?;
    if !key.exists() {
        return Err(SignError::KeyNotFound(opts.key.clone()));
    }
    let meta = std::fs::metadata(file).map_err(|source| SignError::Io {
        what: "cannot read file to sign",
        path: file.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(SignError::BadFile {
            path: file.to_owned(),
            reason: "not a regular file".into(),
        });
    }
    let name = file.file_name().ok_or_else(|| SignError::BadFile {
        path: file.to_owned(),
        reason: "no file name".into(),
    })?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };

    let tmp = tempfile::Builder::new()
        .prefix(".castellan-sign-")
        .tempdir_in(&dir)
        .map_err(|source| SignError::Io {
            what: "cannot create a temporary directory",
            path: dir.clone(),
            source,
        })?;
    let copy = tmp.path().join(name);
    std::fs::copy(file, &copy).map_err(|source| SignError::Io {
        what: "cannot copy file to sign",
        path: file.to_owned(),
        source,
    })?;

    let mut cmd = Command::new(&ssh_keygen);
    cmd.arg("-Y")
        .arg("sign")
        .arg("-f")
        .arg(&key)
        .arg("-n")
        .arg(namespace)
        .arg(name)
        .current_dir(tmp.path())
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(sock) = &opts.agent_socket {
        cmd.env("SSH_AUTH_SOCK", sock);
    }
    let mut child = cmd.spawn().map_err(|source| SignError::Io {
        what: "cannot run ssh-keygen",
        path: ssh_keygen.clone(),
        source,
    })?;
    let mut captured = Vec::new();
    let mut echo = EchoFilter::default();
    if let Some(mut stderr) = child.stderr.take() {
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if opts.echo_stderr {
                        let _ = std::io::stderr().write_all(&echo.feed(&buf[..n]));
                    }
                    if captured.len() < 64 * 1024 {
                        captured.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    if opts.echo_stderr {
        let _ = std::io::stderr().write_all(&echo.finish());
    }
    let status = child.wait().map_err(|source| SignError::Io {
        what: "cannot wait for ssh-keygen",
        path: ssh_keygen.clone(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&captured).trim().to_owned();
    if !status.success() {
        return Err(SignError::Failed {
            status: status.to_string(),
            stderr,
        });
    }
    let produced = signature_path(&copy, 1);
    if !produced.is_file() {
        return Err(SignError::Failed {
            status: "exit status 0 but no signature written".into(),
            stderr,
        });
    }

    for n in 1..=MAX_SIGNATURE_SLOTS {
        let dest = signature_path(file, n);
        match place_new(&produced, &dest) {
            Ok(()) => return Ok(dest),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(SignError::Io {
                    what: "cannot write signature",
                    path: dest,
                    source,
                });
            }
        }
    }
    Err(SignError::NoFreeName(file.to_owned()))
}

/// ssh-keygen's progress lines, which name the file in the temporary directory rather than
/// the signature castellan places (`FILE.2.sig` where `FILE.sig` exists): left out of the
/// echo. Everything else (prompts, warnings, errors) is passed through as it comes.
const PROGRESS_LINES: &[&[u8]] = &[b"Signing file ", b"Write signature to "];

/// Passes ssh-keygen's stderr through, minus [`PROGRESS_LINES`]. A line is held back only
/// while it could still turn out to be one of them, so a prompt without a newline is never
/// delayed.
#[derive(Debug, Default)]
struct EchoFilter {
    /// The start of the current line, not yet passed on or dropped.
    pending: Vec<u8>,
    /// What the rest of the current line gets.
    mode: LineMode,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum LineMode {
    #[default]
    Undecided,
    Pass,
    Drop,
}

impl EchoFilter {
    /// The bytes of `chunk` to show now.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in chunk {
            match self.mode {
                LineMode::Pass => out.push(b),
                LineMode::Drop => {}
                LineMode::Undecided => {
                    self.pending.push(b);
                    let p = &self.pending;
                    if PROGRESS_LINES.iter().any(|l| p.starts_with(l)) {
                        self.mode = LineMode::Drop;
                        self.pending.clear();
                    } else if !PROGRESS_LINES.iter().any(|l| l.starts_with(p)) {
                        self.mode = LineMode::Pass;
                        out.append(&mut self.pending);
                    }
                }
            }
            if b == b'\n' {
                if self.mode == LineMode::Undecided {
                    out.append(&mut self.pending);
                }
                self.mode = LineMode::Undecided;
            }
        }
        out
    }

    /// Whatever is still held back at the end.
    fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// Puts `src` at `dest` only if `dest` does not exist: a hard link (atomic, whole), or
/// where the file system has none, an exclusive create and copy.
fn place_new(src: &Path, dest: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(src, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            let bytes = std::fs::read(src)?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest)?;
            out.write_all(&bytes)?;
            out.sync_all()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EchoFilter;

    fn through(chunks: &[&str]) -> String {
        let mut f = EchoFilter::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(f.feed(c.as_bytes()));
        }
        out.extend(f.finish());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn progress_lines_are_dropped_and_the_rest_passes() {
        assert_eq!(
            through(&["Signing file op.toml\nWrite signature to op.toml.sig\n"]),
            ""
        );
        assert_eq!(
            through(&[
                "Sign",
                "ing file a\nConfirm user presence for key ED25519-SK\n"
            ]),
            "Confirm user presence for key ED25519-SK\n"
        );
        assert_eq!(
            through(&["Couldn't load public key k: No such file\n"]),
            "Couldn't load public key k: No such file\n"
        );
        // A prompt without a newline is shown at once, not held back.
        let mut f = EchoFilter::default();
        assert_eq!(
            f.feed(b"Enter PIN for key: "),
            b"Enter PIN for key: ".to_vec()
        );
        // A line that starts like a progress line but is not one passes whole.
        assert_eq!(through(&["Signing failed\n"]), "Signing failed\n");
    }
}
