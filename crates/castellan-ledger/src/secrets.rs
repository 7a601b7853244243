//! The secret scanner the owner-response intake uses to quarantine responses that carry
//! a secret.
//!
//! An owner response may *refer* to a secret (`${DB_PASSWORD}`, `{{ vault_db_password }}`,
//! `op://ops/db/password`, `<redacted>`); it must never *contain* one. [`Scanner::scan`]
//! finds what it contains:
//!
//! 1. **Rules**, as data: `rules/castellan.yml` (what the intake must catch that generic
//!    rule sets miss: assignments, cookies, environment dumps, private keys, partial and
//!    masked tokens, connection strings, ...) and `rules/providers/*.yml` (provider token
//!    formats). Both use Nosey Parker's rule-file format (see `rules/NOTICE`), extended
//!    with `kind`, `keywords`, `filter` and `decoded_only` (documented at the top of
//!    `rules/castellan.yml`). Every rule's `examples` must be found by it and its
//!    `negative_examples` must not; `tests/secret_rules.rs` checks both.
//! 2. **Entropy**: long random-looking tokens no rule names (`secrets/entropy.rs`
//!    documents the thresholds: at least 20 characters of `[A-Za-z0-9+/=_-]` with upper
//!    case, lower case and digits, not hex or a UUID, at least 3.5 bits per character,
//!    and not reading as words or a path of words), reported as
//!    [`FindingKind::HighEntropy`] with rule id `castellan.entropy`.
//! 3. **Encodings**: base64 tokens that decode to printable text, and percent-encoded
//!    tokens, are decoded and scanned again (base64 to a depth of two); a finding there is
//!    reported at the encoded token's span with ` (base64)` (or ` (percent-encoded)`)
//!    appended to its location.
//!
//! Throughput: every regular expression is compiled once ([`Scanner::builtin`]); an
//! Aho-Corasick automaton over the rules' keywords picks the rules worth running on a
//! text, and only those run.
//!
//! Invariant: a [`Finding`] holds the secret only to fingerprint it. It is not
//! `Serialize`, its `Debug` never shows the value, and what may be stored about it is a
//! [`RedactedFinding`], which carries a keyed, truncated fingerprint instead.

mod encoding;
mod entropy;
mod filters;
mod references;
mod rules;

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use rules::CompiledRule;

/// Rule id of entropy findings.
pub const ENTROPY_RULE_ID: &str = "castellan.entropy";
const ENTROPY_RULE_NAME: &str = "High-Entropy String";
/// How many times base64 is decoded inside base64.
const MAX_DECODE_DEPTH: usize = 2;

/// What kind of secret a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A private key (PEM, OpenSSH, PGP, PuTTY, age, WireGuard), whole or partial.
    PrivateKey,
    /// An API token, access key or bearer credential.
    Token,
    /// A password or other secret value, including password hashes.
    Password,
    /// A cookie with a value.
    Cookie,
    /// Three or more lines of `NAME=value`: an `env`, `printenv` or `.env` paste.
    EnvDump,
    /// A known token prefix with some of the token, or a mask that still reveals some.
    PartialSecret,
    /// A connection string with a password in it.
    ConnectionString,
    /// A random-looking string no rule names.
    HighEntropy,
}

impl FindingKind {
    fn from_snake_case(s: &str) -> Option<Self> {
        Some(match s {
            "private_key" => Self::PrivateKey,
            "token" => Self::Token,
            "password" => Self::Password,
            "cookie" => Self::Cookie,
            "env_dump" => Self::EnvDump,
            "partial_secret" => Self::PartialSecret,
            "connection_string" => Self::ConnectionString,
            "high_entropy" => Self::HighEntropy,
            _ => return None,
        })
    }
}

/// A secret found in a text. Holds the secret bytes only to fingerprint them; its `Debug`
/// never prints the value; it is not `Serialize`.
#[derive(Clone)]
pub struct Finding {
    /// The rule that found it, e.g. `castellan.github.pat`, `castellan.password_assignment`,
    /// `castellan.entropy`.
    pub rule_id: String,
    /// The rule's human-readable name.
    pub rule_name: String,
    /// What kind of secret it is.
    pub kind: FindingKind,
    /// Where: as passed by the caller, with ` (base64)` appended when found in decoded text.
    pub location: String,
    /// Byte range of the secret in the scanned text (the encoded token for a finding in
    /// decoded text). For rules with a capture group this is the group (the value of
    /// `password: value`), not the whole match.
    pub span: Range<usize>,
    /// The matched secret (the capture group, or the whole match; decoded for a finding
    /// in decoded text).
    secret: Vec<u8>,
}

impl Finding {
    /// Length of the secret in bytes.
    pub fn secret_len(&self) -> usize {
        self.secret.len()
    }

    /// Keyed fingerprint: HMAC-SHA256(key, secret), first 16 hex chars, prefixed
    /// `hmac-sha256:`.
    pub fn fingerprint(&self, key: &FingerprintKey) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&key.0) {
            Ok(mac) => mac,
            // HMAC accepts keys of any length: this arm is never taken.
            Err(_) => return String::from("hmac-sha256:unavailable"),
        };
        mac.update(&self.secret);
        let digest = hex::encode(mac.finalize().into_bytes());
        format!("hmac-sha256:{}", &digest[..16])
    }

    /// What may be stored about this finding.
    pub fn redact(&self, key: &FingerprintKey) -> RedactedFinding {
        RedactedFinding {
            rule_id: self.rule_id.clone(),
            rule_name: self.rule_name.clone(),
            kind: self.kind,
            location: self.location.clone(),
            fingerprint: self.fingerprint(key),
            length: self.secret.len(),
        }
    }

    /// Test/diagnostic access to the raw secret (the ledger's property tests use it to
    /// check that nothing stored contains it).
    pub fn secret_bytes(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("rule_id", &self.rule_id)
            .field("kind", &self.kind)
            .field("location", &self.location)
            .field("span", &self.span)
            .field("secret_len", &self.secret.len())
            .finish_non_exhaustive()
    }
}

/// What may be stored about a finding: never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactedFinding {
    /// The rule that found it.
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// What kind of secret it is.
    pub kind: FindingKind,
    /// Where it was found.
    pub location: String,
    /// [`Finding::fingerprint`] under the ledger's key.
    pub fingerprint: String,
    /// Length of the secret in bytes.
    pub length: usize,
}

/// A per-ledger 32-byte HMAC key, so that fingerprints of low-entropy secrets cannot be
/// dictionary-reversed by anyone without the ledger directory. `Debug` prints
/// `[redacted]`.
pub struct FingerprintKey([u8; 32]);

impl FingerprintKey {
    /// A fresh key from the thread-local CSPRNG (seeded from the operating system).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A key from its stored bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The key's bytes, to store it.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintKey([redacted])")
    }
}

/// A rule's id, name and examples, for the example tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule id, e.g. `castellan.github.pat`.
    pub id: String,
    /// The rule's human-readable name.
    pub name: String,
    /// Texts in which the rule must find something.
    pub examples: Vec<String>,
    /// Texts in which the rule must find nothing.
    pub negative_examples: Vec<String>,
}

/// The compiled rule set with its keyword prefilter.
pub struct Scanner {
    rules: Vec<CompiledRule>,
    /// Aho-Corasick over every rule keyword (ASCII case-insensitive).
    prefilter: Option<AhoCorasick>,
    /// For each prefilter pattern, the rules that keyword enables.
    keyword_rules: Vec<Vec<usize>>,
    /// Rules without keywords: they run on every text.
    always: Vec<usize>,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.rules.len())
            .field("keywords", &self.keyword_rules.len())
            .finish_non_exhaustive()
    }
}

static BUILTIN: LazyLock<Scanner> = LazyLock::new(|| {
    let (scanner, errors) = Scanner::compile(rules::BUILTIN_SOURCES);
    for error in errors {
        tracing::warn!(event = "secret_rule_skipped", %error, "built-in secret rule skipped");
    }
    scanner
});

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Rule(usize),
    Entropy,
}

/// A finding before it is given its caller's location.
struct Hit {
    source: Source,
    kind: FindingKind,
    span: Range<usize>,
    secret: Vec<u8>,
    /// Appended to the location: ` (base64)` per level of decoding.
    suffix: String,
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Whether `outer` holds all of `inner`.
fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

impl Scanner {
    /// The built-in rule set (`rules/castellan.yml` and `rules/providers/*.yml`),
    /// compiled once. A rule that fails to load is skipped with a warning (a unit test
    /// keeps the built-in set free of such rules).
    pub fn builtin() -> &'static Scanner {
        &BUILTIN
    }

    fn compile(sources: &[(&str, &str)]) -> (Scanner, Vec<rules::RuleError>) {
        let (rules, errors) = rules::compile_all(sources);
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(i);
            }
            for keyword in &rule.keywords {
                let keyword = keyword.to_ascii_lowercase();
                match keywords.iter().position(|k| *k == keyword) {
                    Some(k) => keyword_rules[k].push(i),
                    None => {
                        keywords.push(keyword);
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let prefilter = match AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            // A few hundred short keywords: a full DFA is small and the fastest to run.
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
        {
            Ok(ac) => Some(ac),
            Err(error) => {
                // Without the prefilter every rule runs: slower, never less thorough.
                tracing::warn!(
                    event = "secret_prefilter_failed",
                    %error,
                    "secret keyword prefilter not built"
                );
                always = (0..rules.len()).collect();
                None
            }
        };
        (
            Scanner {
                rules,
                prefilter,
                keyword_rules,
                always,
            },
            errors,
        )
    }

    /// The built-in rules plus the operator's rule files `extra` (file name, contents) in
    /// the same format, e.g. a checkout of Nosey Parker's own `rules/` directory read with
    /// [`read_rule_dir`]. The extra files are input: every problem in them (bad YAML, a
    /// pattern that does not compile, an id that is already taken) is an error, all listed.
    pub fn with_extra_rules(extra: &[(String, String)]) -> Result<Scanner, RuleFilesError> {
        let mut sources: Vec<(&str, &str)> = rules::BUILTIN_SOURCES.to_vec();
        sources.extend(extra.iter().map(|(f, t)| (f.as_str(), t.as_str())));
        let (scanner, errors) = Scanner::compile(&sources);
        if errors.is_empty() {
            Ok(scanner)
        } else {
            Err(RuleFilesError(
                errors.iter().map(ToString::to_string).collect(),
            ))
        }
    }

    /// Scans `text`, appending findings (deduplicated by span and rule) to `out`, in
    /// span order.
    pub fn scan(&self, text: &str, location: &str, out: &mut Vec<Finding>) {
        let mut hits = self.scan_inner(text, 0);
        hits.sort_by(|a, b| {
            (a.span.start, a.span.end, self.rule_id(a.source)).cmp(&(
                b.span.start,
                b.span.end,
                self.rule_id(b.source),
            ))
        });
        let mut seen: HashSet<(String, usize, usize, String)> = out
            .iter()
            .map(|f| {
                (
                    f.rule_id.clone(),
                    f.span.start,
                    f.span.end,
                    f.location.clone(),
                )
            })
            .collect();
        for hit in hits {
            let rule_id = self.rule_id(hit.source).to_owned();
            let location = format!("{location}{}", hit.suffix);
            if !seen.insert((
                rule_id.clone(),
                hit.span.start,
                hit.span.end,
                location.clone(),
            )) {
                continue;
            }
            out.push(Finding {
                rule_id,
                rule_name: self.rule_name(hit.source).to_owned(),
                kind: hit.kind,
                location,
                span: hit.span,
                secret: hit.secret,
            });
        }
    }

    /// Number of rules (from the rule files; the entropy check is not counted).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Each rule's id, name and examples.
    pub fn rules(&self) -> impl Iterator<Item = &RuleInfo> {
        self.rules.iter().map(|r| &r.info)
    }

    fn rule_id(&self, source: Source) -> &str {
        match source {
            Source::Rule(i) => self.rules.get(i).map_or("", |r| r.info.id.as_str()),
            Source::Entropy => ENTROPY_RULE_ID,
        }
    }

    fn rule_name(&self, source: Source) -> &str {
        match source {
            Source::Rule(i) => self.rules.get(i).map_or("", |r| r.info.name.as_str()),
            Source::Entropy => ENTROPY_RULE_NAME,
        }
    }

    /// The rules worth running on `text`, in rule order.
    fn candidates(&self, text: &str) -> Vec<usize> {
        let mut enabled = vec![false; self.rules.len()];
        for &i in &self.always {
            enabled[i] = true;
        }
        if let Some(ac) = &self.prefilter {
            let mut seen = vec![false; self.keyword_rules.len()];
            let mut remaining = seen.len();
            for m in ac.find_overlapping_iter(text) {
                let k = m.pattern().as_usize();
                if !seen[k] {
                    seen[k] = true;
                    for &i in &self.keyword_rules[k] {
                        enabled[i] = true;
                    }
                    remaining -= 1;
                    if remaining == 0 {
                        break;
                    }
                }
            }
        }
        enabled
            .iter()
            .enumerate()
            .filter(|(_, e)| **e)
            .map(|(i, _)| i)
            .collect()
    }

    fn scan_inner(&self, text: &str, depth: usize) -> Vec<Hit> {
        let mut hits = Vec::new();
        for i in self.candidates(text) {
            let rule = &self.rules[i];
            if rule.decoded_only && depth == 0 {
                continue;
            }
            for caps in rule.regex.captures_iter(text) {
                let Some(span) = rule.secret_range(&caps) else {
                    continue;
                };
                if span.is_empty() || !rule.filter.accept(text, span.clone()) {
                    continue;
                }
                hits.push(Hit {
                    source: Source::Rule(i),
                    kind: rule.kind,
                    secret: text.as_bytes()[span.clone()].to_vec(),
                    span,
                    suffix: String::new(),
                });
            }
        }

        // A value-checked match (or, below, an entropy token) inside a reference to a secret
        // store is part of the reference, not a secret: `secret:` in an AWS ARN, the
        // `key:7` of `{{resolve:ssm-secure:...:7}}`, `LoadCredential=token:/etc/credstore/x`.
        // Provider token formats still count wherever they appear.
        let references = references::spans(text);
        hits.retain(|h| {
            let checked = match h.source {
                Source::Rule(i) => self.rules[i].filter != filters::Filter::None,
                Source::Entropy => true,
            };
            !(checked && references.iter().any(|r| contains(r, &h.span)))
        });

        // A partial token that a full-token rule matched is that token, not a partial one.
        let tokens: Vec<Range<usize>> = hits
            .iter()
            .filter(|h| h.kind == FindingKind::Token)
            .map(|h| h.span.clone())
            .collect();
        hits.retain(|h| {
            h.kind != FindingKind::PartialSecret || !tokens.iter().any(|t| overlaps(t, &h.span))
        });

        // Entropy: only where no rule found anything, outside public key material.
        let public = public_material(text);
        let rule_spans: Vec<Range<usize>> = hits.iter().map(|h| h.span.clone()).collect();
        for span in entropy::tokens(text) {
            let token = &text[span.clone()];
            if !entropy::is_high_entropy(token)
                || rule_spans.iter().chain(&public).any(|r| overlaps(r, &span))
                || references.iter().any(|r| contains(r, &span))
                || encoding::decode_printable_base64(token).is_some()
            {
                continue;
            }
            hits.push(Hit {
                source: Source::Entropy,
                kind: FindingKind::HighEntropy,
                secret: token.as_bytes().to_vec(),
                span,
                suffix: String::new(),
            });
        }

        // Encodings: decode, scan again, report at the encoded token.
        let mut decoded_hits = Vec::new();
        if depth < MAX_DECODE_DEPTH {
            for span in encoding::base64_tokens(text) {
                if public.iter().any(|r| overlaps(r, &span)) {
                    continue;
                }
                let Some(decoded) = encoding::decode_printable_base64(&text[span.clone()]) else {
                    continue;
                };
                for inner in self.scan_inner(&decoded, depth + 1) {
                    decoded_hits.push(Hit {
                        span: span.clone(),
                        suffix: format!(" (base64){}", inner.suffix),
                        ..inner
                    });
                }
            }
        }
        if depth == 0 {
            for (span, decoded) in encoding::percent_tokens(text) {
                for inner in self.scan_inner(&decoded, depth + 1) {
                    decoded_hits.push(Hit {
                        span: span.clone(),
                        suffix: format!(" (percent-encoded){}", inner.suffix),
                        ..inner
                    });
                }
            }
        }
        // What a rule already found in the encoded form needs no second report.
        decoded_hits.retain(|d| {
            !hits
                .iter()
                .any(|h| h.source == d.source && overlaps(&h.span, &d.span))
        });
        hits.extend(decoded_hits);
        hits
    }
}

/// Spans of public key material (certificates, public keys, signatures, SSH public
/// keys and their `SHA256:` fingerprints), which look random but are not secrets.
fn public_material(text: &str) -> Vec<Range<usize>> {
    static PUBLIC: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?s)-----BEGIN (?:[A-Z0-9 ]*PUBLIC KEY(?: BLOCK)?|CERTIFICATE(?: REQUEST)?|X509 CRL|TRUSTED CERTIFICATE|PGP SIGNATURE|PGP MESSAGE|SSH SIGNATURE|SIGNED MESSAGE)-----.*?(?:-----END [A-Z0-9 ]+-----|\z)|\bSHA256:[A-Za-z0-9+/]{43}(?:[^A-Za-z0-9+/=]|\z)|\b(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(?:-cert-v01@openssh\.com)?[ \t]+AAAA[A-Za-z0-9+/]+=*",
        )
        .map_err(|error| tracing::warn!(event = "secret_rule_skipped", %error, "public-material pattern"))
        .ok()
    });
    let Some(re) = PUBLIC.as_ref() else {
        return Vec::new();
    };
    if !text.contains("-----BEGIN") && !text.contains("AAAA") && !text.contains("SHA256:") {
        return Vec::new();
    }
    re.find_iter(text).map(|m| m.range()).collect()
}

/// Why extra rule files were refused: one line per problem.
#[derive(Debug, thiserror::Error)]
#[error("secret rules refused:\n  {}", .0.join("\n  "))]
pub struct RuleFilesError(pub Vec<String>);

/// Largest rule file read by [`read_rule_dir`].
pub const MAX_RULE_FILE_BYTES: u64 = 1024 * 1024;
/// Most rule files read by [`read_rule_dir`].
pub const MAX_RULE_FILES: usize = 1000;

/// Reads every `*.yml` / `*.yaml` file under `dir` (recursively, sorted by path) as
/// (path relative to `dir`, contents), for [`Scanner::with_extra_rules`].
pub fn read_rule_dir(dir: &std::path::Path) -> Result<Vec<(String, String)>, RuleFilesError> {
    fn walk(
        base: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<std::path::PathBuf>,
    ) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = entry.path();
            let ty = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if ty.is_dir() {
                walk(base, &path, out)?;
            } else if ty.is_file() && path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                out.push(path);
            }
            if out.len() > MAX_RULE_FILES {
                return Err(format!(
                    "{}: more than {MAX_RULE_FILES} rule files",
                    base.display()
                ));
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths).map_err(|e| RuleFilesError(vec![e]))?;
    paths.sort();
    if paths.is_empty() {
        return Err(RuleFilesError(vec![format!(
            "{}: no *.yml or *.yaml rule files",
            dir.display()
        )]));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        let name = p
            .strip_prefix(dir)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        match std::fs::metadata(&p) {
            Ok(m) if m.len() > MAX_RULE_FILE_BYTES => {
                problems.push(format!("{name}: larger than {MAX_RULE_FILE_BYTES} bytes"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
            Ok(_) => {}
        }
        match std::fs::read_to_string(&p) {
            Ok(text) => out.push((name, text)),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RuleFilesError(problems))
    }
}

/// Replaces every finding's span in `text` with `[REDACTED:<rule_id>]`. Overlapping spans
/// are merged (and labelled with the rule of the one that starts first); a span that does
/// not fall on character boundaries is widened to them.
pub fn redact_text(text: &str, findings: &[Finding]) -> String {
    let mut spans: Vec<(Range<usize>, &str)> = findings
        .iter()
        .filter_map(|f| {
            let mut start = f.span.start.min(text.len());
            let mut end = f.span.end.min(text.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            while !text.is_char_boundary(end) {
                end += 1;
            }
            (start < end).then_some((start..end, f.rule_id.as_str()))
        })
        .collect();
    spans.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut merged: Vec<(Range<usize>, &str)> = Vec::new();
    for (span, id) in spans {
        match merged.last_mut() {
            Some((last, _)) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push((span, id)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (span, id) in merged {
        out.push_str(&text[at..span.start]);
        out.push_str("[REDACTED:");
        out.push_str(id);
        out.push(']');
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_all_load() {
        let (scanner, errors) = Scanner::compile(rules::BUILTIN_SOURCES);
        assert!(errors.is_empty(), "rule errors: {errors:#?}");
        assert!(
            scanner.rule_count() >= 60,
            "only {} rules",
            scanner.rule_count()
        );
        assert!(
            scanner.always.is_empty(),
            "every built-in rule should have keywords"
        );
    }

    #[test]
    fn broken_rules_are_skipped_not_fatal() {
        let yaml = "rules:\n- {id: a, name: A, pattern: '(unclosed'}\n- {id: b, name: B, pattern: 'ok', kind: nope}\n- {id: c, name: C, pattern: 'fine'}\n";
        let (scanner, errors) = Scanner::compile(&[("t.yml", yaml), ("bad.yml", "rules: [")]);
        assert_eq!(scanner.rule_count(), 1);
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }

    #[test]
    fn finding_kind_names_round_trip() {
        for kind in [
            FindingKind::PrivateKey,
            FindingKind::Token,
            FindingKind::Password,
            FindingKind::Cookie,
            FindingKind::EnvDump,
            FindingKind::PartialSecret,
            FindingKind::ConnectionString,
            FindingKind::HighEntropy,
        ] {
            let name = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned));
            assert_eq!(
                name.as_deref().and_then(FindingKind::from_snake_case),
                Some(kind)
            );
        }
    }

    #[test]
    fn redact_merges_overlaps() {
        let f = |id: &str, span: Range<usize>| Finding {
            rule_id: id.into(),
            rule_name: id.into(),
            kind: FindingKind::Token,
            location: "x".into(),
            secret: b"s".to_vec(),
            span,
        };
        let text = "0123456789";
        assert_eq!(
            redact_text(text, &[f("a", 2..5), f("b", 4..7)]),
            "01[REDACTED:a]789"
        );
        assert_eq!(redact_text(text, &[f("a", 8..20)]), "01234567[REDACTED:a]");
        assert_eq!(redact_text("aé", &[f("a", 2..3)]), "a[REDACTED:a]");
    }
}
