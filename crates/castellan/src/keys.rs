//! The signing key an operator names with `--key` (and `--agent`), checked before anything
//! is signed or written: `castellan op sign` and `castellan ledger review` share it.
//!
//! Only the key file's first line is read (a PEM header such as `-----BEGIN OPENSSH PRIVATE
//! KEY-----`, or an OpenSSH public key line), never the key material; signing itself is
//! `ssh-keygen`'s, as before.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use castellan_sig::{SignError, SignOptions};

/// What a key file holds, judged by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFile {
    /// A private key (OpenSSH or PEM).
    Private,
    /// An OpenSSH public key line: usable only with its private half in an ssh-agent.
    Public,
}

/// Longest first line read from a key file.
const FIRST_LINE_MAX: u64 = 16 * 1024;

/// Says what `path` holds, or why it cannot be a signing key.
pub fn inspect(path: &Path) -> anyhow::Result<KeyFile> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{}: key file not found", path.display())
        }
        Err(e) => return Err(anyhow!("cannot read key file {}: {e}", path.display())),
    };
    if !meta.is_file() {
        bail!("{} is not a key file (not a regular file)", path.display());
    }
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow!("cannot read key file {}: {e}", path.display()))?;
    let mut head = Vec::new();
    file.take(FIRST_LINE_MAX)
        .read_to_end(&mut head)
        .map_err(|e| anyhow!("cannot read key file {}: {e}", path.display()))?;
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    head.truncate(line_end);
    let first = String::from_utf8_lossy(&head);
    let first = first.trim();
    if first.starts_with("-----BEGIN ") && first.ends_with("PRIVATE KEY-----") {
        return Ok(KeyFile::Private);
    }
    if ssh_key::PublicKey::from_openssh(first).is_ok() {
        return Ok(KeyFile::Public);
    }
    bail!(
        "{} is not an SSH private key (nor the public key of one held by an ssh-agent)",
        path.display()
    )
}

/// `path` with `.pub` appended.
fn public_of(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// The sign options for `--key KEY` (and `--agent`), after checking the key: a private key
/// file, or a public key whose private half is in the ssh-agent at `SSH_AUTH_SOCK`. With
/// `agent`, a private key's `.pub` beside it is what ssh-keygen gets, so the private key
/// file is never read. Nothing is written here.
pub fn sign_options(key: &Path, agent: bool) -> anyhow::Result<SignOptions> {
    let agent_running = std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty());
    if agent && !agent_running {
        bail!("--agent needs a running ssh-agent: SSH_AUTH_SOCK is not set");
    }
    let mut key = key.to_owned();
    if agent && key.extension().is_none_or(|e| e != "pub") {
        let public = public_of(&key);
        if !public.is_file() {
            bail!(
                "--agent signs with the agent's copy of the key: pass its public key \
                 ({} not found)",
                public.display()
            );
        }
        key = public;
    }
    match inspect(&key)? {
        KeyFile::Private if agent => bail!(
            "--agent signs with the agent's copy of the key, but {} is a private key file",
            key.display()
        ),
        KeyFile::Private => {}
        KeyFile::Public if !agent_running => bail!(
            "{} is a public key: signing with it needs its private half in an ssh-agent, and \
             SSH_AUTH_SOCK is not set (pass the private key file instead)",
            key.display()
        ),
        KeyFile::Public => {}
    }
    let mut opts = SignOptions::new(key);
    // ssh-keygen's prompts (a security key's "Confirm user presence") reach the operator.
    opts.echo_stderr = true;
    Ok(opts)
}

/// Turns a signing failure into one error: ssh-keygen's own messages were already shown
/// on stderr as it ran (`echo_stderr`), so they are not repeated.
pub fn sign_failed(e: SignError) -> anyhow::Error {
    match e {
        SignError::Failed { status, .. } => {
            anyhow!("ssh-keygen could not sign ({status}); its message is above")
        }
        other => anyhow::Error::new(other).context("signing failed"),
    }
}

/// Signs `file` under `namespace` with the checked options.
pub fn sign(opts: &SignOptions, namespace: &str, file: &Path) -> anyhow::Result<PathBuf> {
    castellan_sig::sign_file(opts, namespace, file)
        .map_err(sign_failed)
        .with_context(|| format!("cannot sign {}", file.display()))
}
