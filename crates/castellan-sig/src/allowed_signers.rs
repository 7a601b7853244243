//! The OpenSSH `allowed_signers` format (`man ssh-keygen`, ALLOWED SIGNERS), parsed here
//! to match `sshsig.c`:
//!
//! ```text
//! # comment
//! alice@example.com,"*@ops.example.com" namespaces="castellan-op",valid-before="20300101Z" ssh-ed25519 AAAA... alice
//! ```
//!
//! One entry per line: a principals pattern-list (optionally double-quoted), optional
//! comma-separated options, the key type, the base64 key and an optional comment. Options
//! (names case-insensitive, values double-quoted with `\"` as an escaped quote):
//! `namespaces="pattern-list"`, `valid-after="TIME"`, `valid-before="TIME"` where TIME is
//! `YYYYMMDD[HHMM[SS]]` optionally followed by `Z` or `UTC` (UTC; otherwise the system time
//! zone, as OpenSSH reads it).
//!
//! Differences from OpenSSH, all of them refusals of something OpenSSH would accept:
//! `cert-authority` entries and certificate keys (castellan verifies plain keys only), key
//! types castellan does not verify (`ssh-dss`, unknown types), RSA keys under 2048 bits,
//! empty principals or namespaces, a `"` inside an unquoted principals field, and
//! seconds `60`. Every problem is reported with its line number.

use std::fmt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use ssh_key::{HashAlg, PublicKey};

use crate::pattern::{ListMatch, match_list};

/// Largest `allowed_signers` file [`AllowedSigners::load`] reads.
pub const MAX_ALLOWED_SIGNERS_BYTES: u64 = 1024 * 1024;

/// Longest piece of input quoted back in an error message.
const QUOTE_LIMIT: usize = 64;

/// A parsed `allowed_signers` file: the keys a host trusts, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowedSigners {
    /// The entries, in the order of their lines.
    pub entries: Vec<SignerEntry>,
}

/// One `allowed_signers` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerEntry {
    /// The principal patterns as written (split at commas; a leading `!` negates).
    pub principals: Vec<String>,
    /// `namespaces="..."`: the namespace patterns this key may sign under; `None` is any.
    pub namespaces: Option<Vec<String>>,
    /// `valid-after=`: the key is not valid before this instant.
    pub valid_after: Option<Timestamp>,
    /// `valid-before=`: the key is not valid at or after this instant.
    pub valid_before: Option<Timestamp>,
    /// The trusted public key (its comment is the line's comment, if any).
    pub key: PublicKey,
    /// The key's SHA-256 fingerprint as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fingerprint: String,
    /// The 1-based line number the entry was read from.
    pub line: usize,
}

/// Why an `allowed_signers` file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllowedSignersError {
    /// A `cert-authority` entry: castellan does not verify certificates.
    #[error(
        "line {line}: cert-authority entries are not supported: castellan verifies plain keys only"
    )]
    CertAuthority {
        /// The line number.
        line: usize,
    },
    /// Any other problem with one line.
    #[error("line {line}: {message}")]
    Line {
        /// The line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("{}: cannot read allowed_signers: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_ALLOWED_SIGNERS_BYTES`].
    #[error("{}: allowed_signers is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is not UTF-8.
    #[error("{}: line {line}: not valid utf-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The first line with invalid bytes.
        line: usize,
    },
    /// A problem in a named file.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The problem.
        source: Box<AllowedSignersError>,
    },
}

impl AllowedSignersError {
    /// The line number the problem is on, if it is about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::CertAuthority { line } | Self::Line { line, .. } | Self::NotUtf8 { line, .. } => {
                Some(*line)
            }
            Self::InFile { source, .. } => source.line(),
            Self::Read { .. } | Self::TooLarge { .. } => None,
        }
    }
}

impl AllowedSigners {
    /// Parses `allowed_signers` text; times without `Z` are in the system time zone.
    /// The first bad line refuses the whole file.
    pub fn parse(text: &str) -> Result<Self, AllowedSignersError> {
        Self::parse_in(text, &TimeZone::system())
    }

    /// Parses `allowed_signers` text, reading times without `Z` in the time zone `tz`.
    pub fn parse_in(text: &str, tz: &TimeZone) -> Result<Self, AllowedSignersError> {
        let mut entries = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let content = raw.strip_suffix('\r').unwrap_or(raw);
            let content = content.trim_start_matches([' ', '\t']);
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            entries.push(parse_line(content, line, tz)?);
        }
        Ok(Self { entries })
    }

    /// Reads and parses an `allowed_signers` file (at most 1 MiB); errors name the path.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AllowedSignersError> {
        let path = path.as_ref();
        let text = read_limited(path, MAX_ALLOWED_SIGNERS_BYTES).map_err(|p| {
            let path = path.to_owned();
            match p {
                ReadProblem::Io(source) => AllowedSignersError::Read { path, source },
                ReadProblem::TooLarge(limit) => AllowedSignersError::TooLarge { path, limit },
                ReadProblem::NotUtf8 { line } => AllowedSignersError::NotUtf8 { path, line },
            }
        })?;
        Self::parse(&text).map_err(|e| AllowedSignersError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// The entries whose key has this `SHA256:` fingerprint, in file order.
    pub fn entries_for_fingerprint<'a: 'b, 'b>(
        &'a self,
        fingerprint: &'b str,
    ) -> impl Iterator<Item = &'a SignerEntry> + 'b {
        self.entries
            .iter()
            .filter(move |e| e.fingerprint == fingerprint)
    }

    /// The file as canonical `allowed_signers` text (one [`SignerEntry::to_line`] per
    /// entry). Line numbers are not kept.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            out.push_str(&e.to_line());
            out.push('\n');
        }
        out
    }
}

/// Why [`read_limited`] failed.
#[derive(Debug)]
pub(crate) enum ReadProblem {
    Io(std::io::Error),
    TooLarge(u64),
    NotUtf8 { line: usize },
}

impl fmt::Display for ReadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::TooLarge(limit) => write!(f, "larger than {limit} bytes"),
            Self::NotUtf8 { line } => write!(f, "line {line}: not valid utf-8"),
        }
    }
}

/// Reads a UTF-8 regular file of at most `limit` bytes. A FIFO, device or socket is
/// refused without blocking (opened with `O_NONBLOCK`, checked with `fstat`), so a
/// signer file swapped for a FIFO cannot wedge the agent.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<String, ReadProblem> {
    use rustix::fs::{FileType, Mode, OFlags};
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| ReadProblem::Io(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ReadProblem::Io(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ReadProblem::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadProblem::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadProblem::TooLarge(limit));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..valid]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ReadProblem::NotUtf8 { line }
    })
}

impl SignerEntry {
    /// Whether `name` matches this entry's principals pattern-list, with OpenSSH
    /// `match_pattern_list` semantics: some pattern matches and no negated (`!`) one does.
    pub fn matches_principal(&self, name: &str) -> bool {
        match_list(name, self.principals.iter().map(String::as_str)) == ListMatch::Positive
    }

    /// Whether this entry permits signatures under namespace `ns`: always without a
    /// `namespaces=` option, otherwise when `ns` matches its pattern-list.
    pub fn permits_namespace(&self, ns: &str) -> bool {
        match &self.namespaces {
            None => true,
            Some(list) => match_list(ns, list.iter().map(String::as_str)) == ListMatch::Positive,
        }
    }

    /// Whether the entry is inside its validity window at `at` (`valid-after <= at <
    /// valid-before`).
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.valid_after.is_none_or(|t| t <= at) && self.valid_before.is_none_or(|t| at < t)
    }

    /// The entry as one canonical `allowed_signers` line (times in UTC with `Z`).
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        let principals = self.principals.join(",");
        if principals.contains([' ', '\t']) || principals.starts_with('#') {
            out.push('"');
            out.push_str(&principals);
            out.push('"');
        } else {
            out.push_str(&principals);
        }
        let mut options = Vec::new();
        if let Some(ns) = &self.namespaces {
            options.push(format!(
                "namespaces=\"{}\"",
                ns.join(",").replace('"', "\\\"")
            ));
        }
        if let Some(t) = self.valid_after {
            options.push(format!("valid-after=\"{}\"", format_time(t)));
        }
        if let Some(t) = self.valid_before {
            options.push(format!("valid-before=\"{}\"", format_time(t)));
        }
        if !options.is_empty() {
            out.push(' ');
            out.push_str(&options.join(","));
        }
        out.push(' ');
        match self.key.to_openssh() {
            Ok(key) => out.push_str(&key),
            // Unreachable for a parsed key; keep the line recognisably broken.
            Err(_) => out.push_str("invalid-key"),
        }
        out
    }
}

impl fmt::Display for SignerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

fn format_time(t: Timestamp) -> String {
    t.strftime("%Y%m%d%H%M%SZ").to_string()
}

/// Quotes a piece of input for an error message, bounded in length.
pub(crate) fn quote(s: &str) -> String {
    if s.chars().count() > QUOTE_LIMIT {
        let cut: String = s.chars().take(QUOTE_LIMIT).collect();
        format!("{cut:?}...")
    } else {
        format!("{s:?}")
    }
}

/// The key types castellan verifies (the types OpenSSH writes in `allowed_signers`).
const SUPPORTED_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Key types OpenSSH knows but castellan does not verify.
const UNSUPPORTED_KEY_TYPES: [&str; 1] = ["ssh-dss"];

fn is_key_type(token: &str) -> bool {
    SUPPORTED_KEY_TYPES.contains(&token)
        || UNSUPPORTED_KEY_TYPES.contains(&token)
        || token.ends_with("-cert-v01@openssh.com")
}

fn parse_line(
    content: &str,
    line: usize,
    tz: &TimeZone,
) -> Result<SignerEntry, AllowedSignersError> {
    let err = |message: String| AllowedSignersError::Line { line, message };

    // Principals: a double-quoted string, or everything up to the first blank.
    let (principals_field, rest) = if let Some(after) = content.strip_prefix('"') {
        let end = after
            .find('"')
            .ok_or_else(|| err("unterminated quote in principals".into()))?;
        let rest = &after[end + 1..];
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            return Err(err("principals: text right after the closing quote".into()));
        }
        (&after[..end], rest)
    } else {
        let end = content.find([' ', '\t']).unwrap_or(content.len());
        let field = &content[..end];
        if field.contains('"') {
            return Err(err(format!(
                "principals {}: a quote may only enclose the whole field",
                quote(field)
            )));
        }
        (field, &content[end..])
    };
    if principals_field.is_empty() {
        return Err(err("empty principals".into()));
    }
    let principals: Vec<String> = principals_field.split(',').map(str::to_owned).collect();
    if principals.iter().any(|p| p.is_empty() || p == "!") {
        return Err(err(format!(
            "principals {}: empty pattern in the list",
            quote(principals_field)
        )));
    }

    let (token, rest) = next_token(rest);
    let token = token.ok_or_else(|| err("missing key".into()))?;
    let (options, key_type, rest) = if is_key_type(token) {
        (None, token, rest)
    } else {
        let (key_type, rest) = next_token(rest);
        let key_type = key_type.ok_or_else(|| err("missing key after the options".into()))?;
        (Some(token), key_type, rest)
    };

    // Options come first in the line but the cert-authority refusal is the clearest
    // thing to say about such a line, so options are parsed before the key.
    let options = match options {
        Some(text) => parse_options(text, line, tz)?,
        None => Options::default(),
    };

    check_key_type(key_type).map_err(err)?;
    let (base64, rest) = next_token(rest);
    let base64 = base64.ok_or_else(|| err(format!("missing base64 key after {key_type}")))?;
    let comment = rest.trim_matches([' ', '\t']);
    let key = decode_key(key_type, base64, comment).map_err(err)?;
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    Ok(SignerEntry {
        principals,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
        key,
        fingerprint,
        line,
    })
}

/// Refuses a key type castellan does not verify (certificates, `ssh-dss`, unknown types).
fn check_key_type(key_type: &str) -> Result<(), String> {
    if key_type.ends_with("-cert-v01@openssh.com") {
        return Err(format!(
            "certificate key {} is not supported: castellan verifies plain keys only",
            quote(key_type)
        ));
    }
    if !SUPPORTED_KEY_TYPES.contains(&key_type) {
        return Err(format!(
            "unsupported key type {} (expected one of {})",
            quote(key_type),
            SUPPORTED_KEY_TYPES.join(", ")
        ));
    }
    Ok(())
}

/// Decodes a key of a supported type: the blob must be of that type, and an RSA key at
/// least 2048 bits.
fn decode_key(key_type: &str, base64: &str, comment: &str) -> Result<PublicKey, String> {
    let mut key = PublicKey::from_openssh(&format!("{key_type} {base64}"))
        .map_err(|e| format!("invalid {key_type} key: {e}"))?;
    if key.algorithm().as_str() != key_type {
        return Err(format!(
            "key type {key_type} does not match the key's own type {}",
            key.algorithm()
        ));
    }
    if let Some(rsa) = key.key_data().rsa() {
        let bits = rsa
            .n
            .as_positive_bytes()
            .map(|b| b.len().saturating_mul(8))
            .unwrap_or(0);
        if bits < 2048 {
            return Err(format!(
                "rsa key of about {bits} bits is too small (at least 2048)"
            ));
        }
    }
    key.set_comment(comment);
    Ok(key)
}

/// Parses an OpenSSH public key line, `TYPE BASE64 [COMMENT]` (what a `.pub` file
/// holds), with the checks an allowed_signers entry's key gets.
pub(crate) fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let (key_type, rest) = next_token(text);
    let key_type = key_type.ok_or("empty public key")?;
    check_key_type(key_type)?;
    let (base64, rest) = next_token(rest);
    let base64 = base64.ok_or_else(|| format!("missing base64 key after {key_type}"))?;
    decode_key(key_type, base64, rest.trim_matches([' ', '\t']))
}

/// Skips blanks, then returns the next token and the rest. Blanks inside double quotes
/// belong to the token and `\"` is not a quote, as `sshkey_advance_past_options` reads
/// it.
fn next_token(s: &str) -> (Option<&str>, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return (None, s);
    }
    let bytes = s.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'"') => i += 1,
            b'"' => quoted = !quoted,
            b' ' | b'\t' if !quoted => return (Some(&s[..i]), &s[i..]),
            _ => {}
        }
        i += 1;
    }
    (Some(s), "")
}

#[derive(Debug, Default)]
struct Options {
    namespaces: Option<Vec<String>>,
    valid_after: Option<Timestamp>,
    valid_before: Option<Timestamp>,
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_options(text: &str, line: usize, tz: &TimeZone) -> Result<Options, AllowedSignersError> {
    let err = |message: String| AllowedSignersError::Line { line, message };
    let mut opts = Options::default();
    let mut rest = text;
    loop {
        if let Some(after) = strip_prefix_ci(rest, "cert-authority")
            && (after.is_empty() || after.starts_with(','))
        {
            return Err(AllowedSignersError::CertAuthority { line });
        } else if let Some(after) = strip_prefix_ci(rest, "namespaces=") {
            if opts.namespaces.is_some() {
                return Err(err("more than one namespaces= option".into()));
            }
            let (value, after) = dequote(after).map_err(|m| err(format!("namespaces=: {m}")))?;
            let list: Vec<String> = value.split(',').map(str::to_owned).collect();
            if list.iter().any(|p| p.is_empty() || p == "!") {
                return Err(err(format!(
                    "namespaces={}: empty pattern in the list",
                    quote(&value)
                )));
            }
            opts.namespaces = Some(list);
            rest = after;
        } else if let Some(after) = strip_prefix_ci(rest, "valid-after=") {
            if opts.valid_after.is_some() {
                return Err(err("more than one valid-after= option".into()));
            }
            let (value, after) = dequote(after).map_err(|m| err(format!("valid-after=: {m}")))?;
            opts.valid_after = Some(
                parse_time(&value, tz)
                    .map_err(|m| err(format!("valid-after={}: {m}", quote(&value))))?,
            );
            rest = after;
        } else if let Some(after) = strip_prefix_ci(rest, "valid-before=") {
            if opts.valid_before.is_some() {
                return Err(err("more than one valid-before= option".into()));
            }
            let (value, after) = dequote(after).map_err(|m| err(format!("valid-before=: {m}")))?;
            opts.valid_before = Some(
                parse_time(&value, tz)
                    .map_err(|m| err(format!("valid-before={}: {m}", quote(&value))))?,
            );
            rest = after;
        } else {
            let name_end = rest.find([',', '=']).unwrap_or(rest.len());
            return Err(err(format!(
                "unknown option {} (expected namespaces=, valid-after= or valid-before=)",
                quote(&rest[..name_end])
            )));
        }
        if rest.is_empty() {
            break;
        }
        match rest.strip_prefix(',') {
            Some("") => return Err(err("options end with a comma".into())),
            Some(next) => rest = next,
            None => {
                return Err(err(format!(
                    "unexpected {} after an option value (options are separated by commas)",
                    quote(rest)
                )));
            }
        }
    }
    if let (Some(after), Some(before)) = (opts.valid_after, opts.valid_before)
        && before <= after
    {
        return Err(err("valid-before is not after valid-after".into()));
    }
    Ok(opts)
}

/// OpenSSH `opt_dequote`: the value must be double-quoted; `\"` is a literal quote.
fn dequote(s: &str) -> Result<(String, &str), &'static str> {
    let body = s
        .strip_prefix('"')
        .ok_or("value must be in double quotes")?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' if body[i + 1..].starts_with('"') => {
                out.push('"');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Err("missing closing quote")
}

/// OpenSSH `parse_absolute_time`: `YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`,
/// with a `Z` or `UTC` suffix for UTC, otherwise in `tz`. Must be after the epoch.
fn parse_time(s: &str, tz: &TimeZone) -> Result<Timestamp, String> {
    let (digits, utc) = if let Some(d) = s.strip_suffix(['Z', 'z']).filter(|d| !d.is_empty()) {
        (d, true)
    } else if let Some(d) = s
        .len()
        .checked_sub(3)
        .and_then(|n| {
            s.get(n..)
                .filter(|suffix| suffix.eq_ignore_ascii_case("utc"))
        })
        .and_then(|_| s.get(..s.len() - 3))
        .filter(|d| !d.is_empty())
    {
        (d, true)
    } else {
        (s, false)
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(
            "expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally ending in Z".into(),
        );
    }
    let num = |range: std::ops::Range<usize>| -> i16 {
        digits.get(range).and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10), num(10..12), 0),
        _ => (num(8..10), num(10..12), num(12..14)),
    };
    let civil = DateTime::new(
        year,
        i8::try_from(month).map_err(|_| "month out of range")?,
        i8::try_from(day).map_err(|_| "day out of range")?,
        i8::try_from(hour).map_err(|_| "hour out of range")?,
        i8::try_from(minute).map_err(|_| "minute out of range")?,
        i8::try_from(second).map_err(|_| "second out of range")?,
        0,
    )
    .map_err(|e| format!("not a valid date and time: {e}"))?;
    let ts = if utc {
        civil.to_zoned(TimeZone::UTC)
    } else {
        civil.to_zoned(tz.clone())
    }
    .map_err(|e| format!("not a valid time: {e}"))?
    .timestamp();
    if ts <= Timestamp::UNIX_EPOCH {
        return Err("must be after 1970-01-01 00:00:00 UTC".into());
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn parse_utc(text: &str) -> Result<AllowedSigners, AllowedSignersError> {
        AllowedSigners::parse_in(text, &TimeZone::UTC)
    }

    #[test]
    fn plain_entry_with_comment() {
        let a = parse_utc(&format!("# c\n\n  alice@example.com {ED} alice laptop\n")).unwrap();
        assert_eq!(a.entries.len(), 1);
        let e = &a.entries[0];
        assert_eq!(e.line, 3);
        assert_eq!(e.principals, vec!["alice@example.com"]);
        assert_eq!(e.key.comment(), "alice laptop");
        assert!(e.fingerprint.starts_with("SHA256:"));
        assert!(e.namespaces.is_none());
    }

    #[test]
    fn options_quoted_principals_and_times() {
        let a = parse_utc(&format!(
            "\"alice smith,bob\" NAMESPACES=\"castellan-*,!castellan-test\",Valid-After=\"20240101\",valid-before=\"20300102030405Z\" {ED}\n"
        ))
        .unwrap();
        let e = &a.entries[0];
        assert_eq!(e.principals, vec!["alice smith", "bob"]);
        assert!(e.permits_namespace("castellan-op"));
        assert!(!e.permits_namespace("castellan-test"));
        assert!(!e.permits_namespace("file"));
        assert_eq!(e.valid_after.unwrap().to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(e.valid_before.unwrap().to_string(), "2030-01-02T03:04:05Z");
    }

    #[test]
    fn local_times_use_the_given_zone() {
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let a =
            AllowedSigners::parse_in(&format!("a valid-after=\"202401011200\" {ED}"), &tz).unwrap();
        assert_eq!(
            a.entries[0].valid_after.unwrap().to_string(),
            "2024-01-01T11:00:00Z"
        );
        let a = AllowedSigners::parse_in(&format!("a valid-after=\"202401011200UTC\" {ED}"), &tz)
            .unwrap();
        assert_eq!(
            a.entries[0].valid_after.unwrap().to_string(),
            "2024-01-01T12:00:00Z"
        );
    }

    #[test]
    fn refusals_name_the_line() {
        let cases = [
            (
                format!("a cert-authority {ED}"),
                "line 2: cert-authority entries are not supported: castellan verifies plain keys only",
            ),
            (
                format!("a Cert-Authority,namespaces=\"x\" {ED}"),
                "cert-authority entries are not supported",
            ),
            (format!("a restrict {ED}"), "unknown option \"restrict\""),
            (
                format!("a namespaces=x {ED}"),
                "value must be in double quotes",
            ),
            (format!("a namespaces=\"x {ED}"), "missing key"),
            (
                format!("a namespaces=\"x\",namespaces=\"y\" {ED}"),
                "more than one namespaces=",
            ),
            (format!("a valid-after=\"2024\" {ED}"), "expected YYYYMMDD"),
            (
                format!("a valid-after=\"20241301\" {ED}"),
                "not a valid date",
            ),
            (format!("a valid-after=\"19700101Z\" {ED}"), "after 1970"),
            (
                format!("a valid-after=\"20250101\",valid-before=\"20240101\" {ED}"),
                "valid-before is not after valid-after",
            ),
            (
                format!("a namespaces=\"x\", {ED}"),
                "options end with a comma",
            ),
            ("a".to_string(), "missing key"),
            ("a ssh-ed25519".to_string(), "missing base64 key"),
            ("a ssh-ed25519 AAAA".to_string(), "invalid ssh-ed25519 key"),
            (
                "a ssh-dss AAAA".to_string(),
                "unsupported key type \"ssh-dss\"",
            ),
            (
                "a ssh-ed25519-cert-v01@openssh.com AAAA".to_string(),
                "certificate key",
            ),
            (format!("a,,b {ED}"), "empty pattern"),
            (format!("\"a {ED}"), "unterminated quote"),
            (format!("a\"b {ED}"), "a quote may only enclose"),
            (format!("a namespaces=\"\" {ED}"), "empty pattern"),
        ];
        for (text, want) in cases {
            let text = format!("# header\n{text}\n");
            let got = parse_utc(&text).expect_err(&text).to_string();
            assert!(got.contains(want), "{text:?}: got {got:?}, want {want:?}");
            assert!(got.starts_with("line 2: "), "{got}");
        }
    }

    #[test]
    fn key_type_must_match_blob() {
        let text = format!("a ecdsa-sha2-nistp256 {}", ED.split(' ').nth(1).unwrap());
        let got = parse_utc(&text).unwrap_err().to_string();
        assert!(got.contains("line 1"), "{got}");
    }

    #[test]
    fn to_line_round_trips() {
        let a = parse_utc(&format!(
            "\"x y\" namespaces=\"a\\\"b,c\",valid-after=\"20240101\" {ED} c\nz {ED}\n"
        ))
        .unwrap();
        assert_eq!(a.entries[0].namespaces.as_ref().unwrap()[0], "a\"b");
        let b = parse_utc(&a.to_text()).unwrap();
        assert_eq!(a.entries.len(), b.entries.len());
        for (x, y) in a.entries.iter().zip(&b.entries) {
            assert_eq!(x.principals, y.principals);
            assert_eq!(x.namespaces, y.namespaces);
            assert_eq!(x.valid_after, y.valid_after);
            assert_eq!(x.valid_before, y.valid_before);
            assert_eq!(x.key, y.key);
        }
    }
}
