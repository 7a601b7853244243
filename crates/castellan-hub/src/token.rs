//! Bearer tokens: 32 random bytes, base64url, behind a prefix naming their kind
//! (`cst_enrol_`, `cst_host_`, `cst_op_`) so a token pasted into the wrong place is
//! refused with a clear message and is easy to spot in a leak scanner.
//!
//! The hub keeps only SHA-256 of each token. A token is 256 bits of randomness, so a
//! slow password hash would add nothing; the lookup is by hash, so no comparison of
//! secret bytes happens in the process at all.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// One-time: lets one host enrol once, before it expires.
    Enrol,
    /// A host's credential: reads its own desired state and ops, sends its reports.
    Host,
    /// An operator's API token: writes desired state, relays signed ops, reads status.
    Operator,
}

impl TokenKind {
    /// The text every token of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Enrol => "cst_enrol_",
            TokenKind::Host => "cst_host_",
            TokenKind::Operator => "cst_op_",
        }
    }

    fn word(self) -> &'static str {
        match self {
            TokenKind::Enrol => "an enrolment token",
            TokenKind::Host => "a host credential",
            TokenKind::Operator => "an operator token",
        }
    }
}

/// A freshly made token. Its text is shown once and never stored; `Debug` hides it.
pub struct Token {
    kind: TokenKind,
    text: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:?}, <redacted>)", self.kind)
    }
}

/// The stored form of a token: SHA-256 of its whole text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}..)", hex::encode(&self.0[..4]))
    }
}

impl Token {
    /// A new random token of `kind`.
    pub fn generate(kind: TokenKind) -> Token {
        let bytes: [u8; 32] = rand::random();
        Token {
            kind,
            text: format!(
                "{}{}",
                kind.prefix(),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            ),
        }
    }

    /// The token's text, to hand to its holder once.
    pub fn reveal(&self) -> &str {
        &self.text
    }

    /// What the hub stores.
    pub fn hash(&self) -> TokenHash {
        hash_text(&self.text)
    }
}

fn hash_text(text: &str) -> TokenHash {
    TokenHash(Sha256::digest(text.as_bytes()).into())
}

/// Why a presented token was refused before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not the kind this place takes.
    #[error("expected {expected}, got {got}")]
    WrongKind {
        /// What was expected.
        expected: &'static str,
        /// What the prefix says it is.
        got: &'static str,
    },
    /// Not a castellan token at all.
    #[error("not a castellan token (expected {expected})")]
    Malformed {
        /// What was expected.
        expected: &'static str,
    },
}

/// Checks a presented token's form and returns its hash for the lookup. The token's text
/// never appears in the error.
pub fn check(text: &str, kind: TokenKind) -> Result<TokenHash, TokenError> {
    let text = text.trim();
    let Some(body) = text.strip_prefix(kind.prefix()) else {
        for other in [TokenKind::Enrol, TokenKind::Host, TokenKind::Operator] {
            if text.starts_with(other.prefix()) {
                return Err(TokenError::WrongKind {
                    expected: kind.word(),
                    got: other.word(),
                });
            }
        }
        return Err(TokenError::Malformed {
            expected: kind.word(),
        });
    };
    let well_formed = body.len() == 43
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .is_ok_and(|b| b.len() == 32);
    if !well_formed {
        return Err(TokenError::Malformed {
            expected: kind.word(),
        });
    }
    Ok(hash_text(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_checks_as_its_own_kind_only() {
        let t = Token::generate(TokenKind::Host);
        assert!(t.reveal().starts_with("cst_host_"));
        assert_eq!(check(t.reveal(), TokenKind::Host), Ok(t.hash()));
        assert_eq!(
            check(t.reveal(), TokenKind::Operator),
            Err(TokenError::WrongKind {
                expected: "an operator token",
                got: "a host credential"
            })
        );
        assert!(!format!("{t:?}").contains(t.reveal()));
    }

    #[test]
    fn malformed_tokens_are_refused_without_echo() {
        for bad in ["", "cst_op_", "cst_op_short", "Bearer xyz", "cst_op_!!!!"] {
            let e = check(bad, TokenKind::Operator).expect_err(bad);
            assert!(matches!(e, TokenError::Malformed { .. }), "{bad}");
        }
        let long = format!("cst_op_{}", "A".repeat(44));
        assert!(check(&long, TokenKind::Operator).is_err());
    }

    #[test]
    fn two_tokens_differ() {
        let (a, b) = (
            Token::generate(TokenKind::Enrol),
            Token::generate(TokenKind::Enrol),
        );
        assert_ne!(a.reveal(), b.reveal());
        assert_ne!(a.hash(), b.hash());
    }
}
