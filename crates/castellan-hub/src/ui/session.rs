//! The web UI's sessions: an operator logs in with their operator token once and holds
//! a random session id in a cookie (`__Host-`, HttpOnly, Secure, SameSite=Strict).
//!
//! The hub keeps only the SHA-256 of each session id, with the operator, the hash of the
//! token the session was opened with and the session's CSRF secret. Every request
//! re-checks that token against the store, so revoking an operator's token ends their
//! sessions at once. Sessions live in the hub process that opened them: a restart logs
//! everyone out, and several hubs behind one address need sticky sessions for the UI.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::token::TokenHash;

/// The session cookie's name (`__Host-`: Secure, path `/`, no domain, or browsers refuse it).
pub const SESSION_COOKIE: &str = "__Host-castellan_session";
/// The login form's CSRF cookie (double submit: the form carries the same value).
pub const LOGIN_COOKIE: &str = "__Host-castellan_login";
/// A session unused for this long is over.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session is over this long after login, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions held at once; a login beyond it is refused until some expire.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions one operator holds; a login beyond it ends that operator's oldest, so
/// one token cannot fill the table.
pub const MAX_PER_OPERATOR: usize = 32;

/// A logged-in operator, as a request sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The operator's name.
    pub operator: String,
    /// The hash of the token the session was opened with (re-checked every request).
    pub token: TokenHash,
    /// The value every form of this session must carry.
    pub csrf: String,
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("operator", &self.operator)
            .field("csrf", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Entry {
    view: SessionView,
    opened: Instant,
    used: Instant,
}

/// The hub's open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Entry>>,
}

/// A fresh random value for a cookie or a form (256 bits, URL-safe base64).
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl Sessions {
    /// Opens a session for `operator` (logged in with the token hashing to `token`) and
    /// returns its id, for the cookie. `None` when [`MAX_SESSIONS`] are open and none
    /// has expired.
    pub fn open(&self, operator: &str, token: TokenHash, now: Instant) -> Option<String> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<([u8; 32], Instant)> = open
            .iter()
            .filter(|(_, e)| e.view.operator == operator)
            .map(|(k, e)| (*k, e.opened))
            .collect();
        if mine.len() >= MAX_PER_OPERATOR
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, at)| *at)
        {
            open.remove(oldest);
        }
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, e| live(e, now));
            if open.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_secret();
        open.insert(
            key(&id),
            Entry {
                view: SessionView {
                    operator: operator.to_owned(),
                    token,
                    csrf: random_secret(),
                },
                opened: now,
                used: now,
            },
        );
        Some(id)
    }

    /// The session `id` names, if it is open and not expired (and marks it used).
    pub fn get(&self, id: &str, now: Instant) -> Option<SessionView> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(id);
        let entry = open.get_mut(&k)?;
        if !live(entry, now) {
            open.remove(&k);
            return None;
        }
        entry.used = now;
        Some(entry.view.clone())
    }

    /// Ends the session `id` names (nothing if there is none).
    pub fn close(&self, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(id));
    }

    /// How many sessions are held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(e: &Entry, now: Instant) -> bool {
    now.saturating_duration_since(e.used) < IDLE
        && now.saturating_duration_since(e.opened) < ABSOLUTE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> TokenHash {
        TokenHash([7; 32])
    }

    #[test]
    fn a_session_expires_when_idle_and_after_its_absolute_lifetime() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.open("alice", hash(), t0).expect("room");
        let v = s.get(&id, t0 + Duration::from_secs(60)).expect("open");
        assert_eq!(v.operator, "alice");
        // Idle for longer than IDLE: over, and removed.
        assert!(s.get(&id, t0 + Duration::from_secs(60) + IDLE).is_none());
        assert!(s.is_empty());

        // Used often, it still ends after ABSOLUTE.
        let id = s.open("alice", hash(), t0).expect("room");
        let mut t = t0;
        while t < t0 + ABSOLUTE - IDLE {
            t += IDLE / 2;
            assert!(s.get(&id, t).is_some());
        }
        assert!(s.get(&id, t0 + ABSOLUTE).is_none());
    }

    #[test]
    fn an_unknown_or_closed_id_opens_nothing_and_ids_are_not_reused() {
        let s = Sessions::default();
        let now = Instant::now();
        let a = s.open("alice", hash(), now).expect("room");
        let b = s.open("alice", hash(), now).expect("room");
        assert_ne!(a, b);
        let (va, vb) = (s.get(&a, now).expect("a"), s.get(&b, now).expect("b"));
        assert_ne!(va.csrf, vb.csrf, "each session has its own CSRF secret");
        assert!(s.get("not-a-session", now).is_none());
        s.close(&a);
        assert!(s.get(&a, now).is_none());
        assert!(s.get(&b, now).is_some());
    }

    #[test]
    fn one_operator_cannot_fill_the_table() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.open("mallory", hash(), t0).expect("room");
        let bob = s.open("bob", hash(), t0).expect("room");
        for i in 1..=MAX_PER_OPERATOR as u64 {
            s.open("mallory", hash(), t0 + Duration::from_secs(i))
                .expect("room");
        }
        assert_eq!(s.len(), MAX_PER_OPERATOR + 1);
        assert!(s.get(&first, t0).is_none(), "the oldest of hers went");
        assert!(s.get(&bob, t0).is_some(), "nobody else's");
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        let a = random_secret();
        assert_eq!(a.len(), 43);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &random_secret()));
        assert!(!same_secret(&a, ""));
    }
}
