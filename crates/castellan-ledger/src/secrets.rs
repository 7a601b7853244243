//! (worktree stub of the contract; replaced by the real scanner on merge)
#![allow(missing_docs, dead_code)]
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    PrivateKey,
    Token,
    Password,
    Cookie,
    EnvDump,
    PartialSecret,
    ConnectionString,
    HighEntropy,
}

pub struct Finding {
    pub rule_id: String,
    pub rule_name: String,
    pub kind: FindingKind,
    pub location: String,
    pub span: std::ops::Range<usize>,
    secret: Vec<u8>,
}
impl std::fmt::Debug for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finding")
    }
}
impl Finding {
    pub fn secret_len(&self) -> usize {
        self.secret.len()
    }
    pub fn fingerprint(&self, key: &FingerprintKey) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else {
            return String::new();
        };
        mac.update(&self.secret);
        format!(
            "hmac-sha256:{}",
            &hex::encode(mac.finalize().into_bytes())[..16]
        )
    }
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
    pub fn secret_bytes(&self) -> &[u8] {
        &self.secret
    }
}
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactedFinding {
    pub rule_id: String,
    pub rule_name: String,
    pub kind: FindingKind,
    pub location: String,
    pub fingerprint: String,
    pub length: usize,
}

pub struct FingerprintKey([u8; 32]);
impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}
impl FingerprintKey {
    pub fn generate() -> Self {
        Self(rand::random())
    }
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}
#[derive(Debug)]
pub struct Scanner;
impl Scanner {
    pub fn builtin() -> &'static Scanner {
        &Scanner
    }
    pub fn scan(&self, text: &str, location: &str, out: &mut Vec<Finding>) {
        if let Some(i) = text.find("ghp_") {
            let end = (i + 40).min(text.len());
            out.push(Finding {
                rule_id: "stub".into(),
                rule_name: "stub".into(),
                kind: FindingKind::Token,
                location: location.into(),
                span: i..end,
                secret: text.as_bytes()[i..end].to_vec(),
            });
        }
    }
}
