//! Helpers: ssh-keygen keys and signatures in temporary directories.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use castellan_sig::AllowedSigners;
use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use castellan_testkit::{Key, keygen};

/// `ssh-keygen -Y sign -f KEY -n NS [-O hashalg=..]` over `msg` on stdin.
pub fn sign(key: &Path, ns: &str, msg: &[u8], hashalg: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-Y", "sign", "-f"]).arg(key).args(["-n", ns]);
    if let Some(h) = hashalg {
        cmd.arg("-O").arg(format!("hashalg={h}"));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -Y sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `ssh-keygen -Y verify -f ALLOWED -I PRINCIPAL -n NS -s SIG [-O verify-time=T] < msg`;
/// true when it accepts.
#[allow(clippy::too_many_arguments)]
pub fn keygen_verify(
    dir: &Path,
    allowed: &str,
    principal: &str,
    ns: &str,
    sig: &[u8],
    msg: &[u8],
    verify_time: Option<&str>,
    tz: Option<&str>,
) -> bool {
    let allowed_path = dir.join("allowed_signers.interop");
    std::fs::write(&allowed_path, allowed).unwrap();
    let sig_path = dir.join("interop.sig");
    std::fs::write(&sig_path, sig).unwrap();
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-Y", "verify", "-f"])
        .arg(&allowed_path)
        .args(["-I", principal, "-n", ns, "-s"])
        .arg(&sig_path);
    if let Some(t) = verify_time {
        cmd.arg("-O").arg(format!("verify-time={t}"));
    }
    if let Some(tz) = tz {
        cmd.env("TZ", tz);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    child.wait_with_output().unwrap().status.success()
}

/// Parses allowed_signers text in UTC.
pub fn parse(text: &str) -> AllowedSigners {
    AllowedSigners::parse_in(text, &TimeZone::UTC).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A timestamp from an RFC 3339 string.
pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Appends an SSH `string`.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
    out.extend_from_slice(s);
}

/// Appends an SSH `mpint` of a positive big-endian integer.
pub fn put_mpint(out: &mut Vec<u8>, be: &[u8]) {
    let trimmed: &[u8] = {
        let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        &be[start..]
    };
    let mut v = Vec::new();
    if trimmed.first().is_some_and(|&b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(trimmed);
    put_string(out, &v);
}

/// An SSHSIG blob from its parts.
pub fn sshsig_blob(pubkey: &[u8], ns: &str, hash: &str, sig: &[u8]) -> Vec<u8> {
    let mut b = b"SSHSIG".to_vec();
    b.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut b, pubkey);
    put_string(&mut b, ns.as_bytes());
    put_string(&mut b, b"");
    put_string(&mut b, hash.as_bytes());
    put_string(&mut b, sig);
    b
}

/// Reads the SSH strings of a blob after `skip` leading bytes.
pub fn split_strings(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 4 + n {
            break;
        }
        out.push(b[4..4 + n].to_vec());
        b = &b[4 + n..];
    }
    out
}
