//! API token credentials: `USER@REALM!TOKENID=SECRET`.
//!
//! Proxmox VE authenticates API tokens with the header
//! `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET` (pve-access-control,
//! `PVE::AccessControl::verify_token`; the same format is used by proxmoxer and go-proxmox).
//! The secret never leaves this module except in that header: `Debug` and `Display` redact it,
//! and parse errors never echo the input.

use crate::error::Error;
use reqwest::header::HeaderValue;
use std::fmt;
use std::str::FromStr;

/// An API token: user, realm, token name and secret.
///
/// Parsed from `user@realm!tokenid=secret` (for example `root@pam!castellan=0b5c...`).
/// `Debug` and `Display` print only `user@realm!tokenid`; the secret is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    user: String,
    realm: String,
    token_name: String,
    secret: String,
}

impl ApiToken {
    /// Builds a token from its parts, validating each of them like [`FromStr`] does. Errors
    /// name the offending user, realm or token name (never the secret).
    pub fn new(userid: &str, token_name: &str, secret: &str) -> Result<Self, Error> {
        Self::from_parts(userid, token_name, secret).map_err(|bad| {
            let value = match bad.part {
                Part::UserId => format!(" {userid:?}"),
                Part::User => format!(" {:?}", userid.rsplit_once('@').map_or(userid, |(u, _)| u)),
                Part::Realm => format!(" {:?}", userid.rsplit_once('@').map_or("", |(_, r)| r)),
                Part::TokenName => format!(" {token_name:?}"),
                Part::Secret => String::new(),
            };
            Error::Config(format!(
                "invalid api token {}{value}: {}",
                bad.part.name(),
                bad.rule
            ))
        })
    }

    fn from_parts(userid: &str, token_name: &str, secret: &str) -> Result<Self, BadPart> {
        let (user, realm) = userid.rsplit_once('@').ok_or(BadPart {
            part: Part::UserId,
            rule: "expected user@realm",
        })?;
        validate_user(user)?;
        validate_realm(realm)?;
        validate_token_name(token_name)?;
        validate_secret(secret)?;
        Ok(Self {
            user: user.to_owned(),
            realm: realm.to_owned(),
            token_name: token_name.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// The user id the token belongs to, `user@realm`.
    pub fn userid(&self) -> String {
        format!("{}@{}", self.user, self.realm)
    }

    /// The user name without the realm.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The authentication realm (`pam`, `pve`, ...).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The token's name (the part after `!`).
    pub fn token_name(&self) -> &str {
        &self.token_name
    }

    /// The full token id, `user@realm!tokenid`: what PVE shows as the task user of every
    /// task the token starts, and safe to log.
    pub fn token_id(&self) -> String {
        format!("{}@{}!{}", self.user, self.realm, self.token_name)
    }

    /// The `Authorization` header value, marked sensitive so that `http`'s own `Debug`
    /// prints it as `Sensitive`.
    pub(crate) fn header_value(&self) -> Result<HeaderValue, Error> {
        let mut value = HeaderValue::from_str(&format!(
            "PVEAPIToken={}@{}!{}={}",
            self.user, self.realm, self.token_name, self.secret
        ))
        .map_err(|_| {
            Error::Config(format!(
                "api token {} cannot be sent as an http header",
                self.token_id()
            ))
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl FromStr for ApiToken {
    type Err = Error;

    /// Parses `user@realm!tokenid=secret`. The error message names the part that is wrong
    /// but never repeats any of the input: a mangled token string (say, parts in the wrong
    /// order) may put the secret anywhere.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // Realms and token names cannot contain '!' or '=', so the first '!' ends the user
        // id and the first '=' after it ends the token name; the secret may contain anything
        // printable, including '=' and '!'. (User names containing '!' are not supported.)
        let bang = s.find('!').ok_or_else(|| {
            Error::Config(
                "invalid api token: expected user@realm!tokenid=secret, found no '!'".into(),
            )
        })?;
        let eq = s[bang..].find('=').map(|i| bang + i).ok_or_else(|| {
            Error::Config(
                "invalid api token: expected user@realm!tokenid=secret, found no '=' after the token id"
                    .into(),
            )
        })?;
        let userid = &s[..bang];
        let token_name = &s[bang + 1..eq];
        let secret = &s[eq + 1..];
        Self::from_parts(userid, token_name, secret).map_err(|bad| {
            Error::Config(format!(
                "invalid api token: the {} {}",
                bad.part.name(),
                bad.rule
            ))
        })
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("user", &self.user)
            .field("realm", &self.realm)
            .field("token_name", &self.token_name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for ApiToken {
    /// Prints the token id only: `user@realm!tokenid`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}!{}", self.user, self.realm, self.token_name)
    }
}

/// Which part of a token is malformed.
#[derive(Debug, Clone, Copy)]
enum Part {
    UserId,
    User,
    Realm,
    TokenName,
    Secret,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::UserId => "user id",
            Part::User => "user",
            Part::Realm => "realm",
            Part::TokenName => "token name",
            Part::Secret => "secret",
        }
    }
}

/// A malformed part and the rule it breaks; carries no input text.
#[derive(Debug, Clone, Copy)]
struct BadPart {
    part: Part,
    rule: &'static str,
}

// Validation follows pve-access-control's formats: `pve-userid` is
// `[^\s:/]+@[A-Za-z][A-Za-z0-9\.\-_]+` and `pve-tokenid` is `[A-Za-z][A-Za-z0-9\.\-_]+`
// (PVE::Auth::Plugin, $realm_regex / $user_regex; PVE::AccessControl, $token_subid_regex).

fn validate_user(user: &str) -> Result<(), BadPart> {
    let bad = |rule| {
        Err(BadPart {
            part: Part::User,
            rule,
        })
    };
    if user.is_empty() || user.len() > 60 {
        return bad("must be 1 to 60 characters");
    }
    if user
        .chars()
        .any(|c| c.is_whitespace() || c == ':' || c == '/')
    {
        return bad("must not contain whitespace, ':' or '/'");
    }
    Ok(())
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

const IDENT_RULE: &str = "must be a letter followed by at least one letter, digit, '.', '-' or '_'";

fn validate_realm(realm: &str) -> Result<(), BadPart> {
    if realm.len() < 2 || realm.len() > 32 || !is_ident(realm) {
        return Err(BadPart {
            part: Part::Realm,
            rule: IDENT_RULE,
        });
    }
    Ok(())
}

fn validate_token_name(name: &str) -> Result<(), BadPart> {
    if name.len() < 2 || name.len() > 64 || !is_ident(name) {
        return Err(BadPart {
            part: Part::TokenName,
            rule: IDENT_RULE,
        });
    }
    Ok(())
}

fn validate_secret(secret: &str) -> Result<(), BadPart> {
    let bad = |rule| {
        Err(BadPart {
            part: Part::Secret,
            rule,
        })
    };
    if secret.is_empty() {
        return bad("is empty");
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("must be printable ascii without spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "2b2f6c1e-5a8d-4c3e-9f0a-7d6b5c4a3e21";

    #[test]
    fn parses_token_string() -> Result<(), Error> {
        let t: ApiToken = format!("root@pam!castellan={SECRET}").parse()?;
        assert_eq!(t.user(), "root");
        assert_eq!(t.realm(), "pam");
        assert_eq!(t.token_name(), "castellan");
        assert_eq!(t.userid(), "root@pam");
        assert_eq!(t.token_id(), "root@pam!castellan");
        let header = t.header_value()?;
        assert_eq!(
            header.to_str().ok(),
            Some(format!("PVEAPIToken=root@pam!castellan={SECRET}").as_str())
        );
        assert!(header.is_sensitive());
        Ok(())
    }

    #[test]
    fn secret_may_contain_equals_and_bang() -> Result<(), Error> {
        let t: ApiToken = "agent@pve!ci-1=a=b!c".parse()?;
        assert_eq!(t.token_name(), "ci-1");
        assert_eq!(t.secret, "a=b!c");
        Ok(())
    }

    #[test]
    fn rejects_malformed_tokens_without_echoing_them() {
        for bad in [
            "",
            "root@pam",
            "root@pam!castellan",
            "root@pam!castellan=",
            "rootpam!castellan=SECRETVALUE",
            "root@p!castellan=SECRETVALUE",
            "root@pam!9bad=SECRETVALUE",
            "root@pam!=SECRETVALUE",
            "ro ot@pam!castellan=SECRETVALUE",
            "root@pam!castellan=SECRET VALUE",
            // Parts in the wrong order put the secret where a user name belongs.
            "castellan=SECRETVALUE!root@pam",
            "SECRETVALUE@pam!x=y",
        ] {
            let err = match bad.parse::<ApiToken>() {
                Ok(t) => panic!("{bad:?} parsed as {t:?}"),
                Err(e) => e.to_string(),
            };
            assert!(!err.contains("SECRET"), "{err}");
            assert!(err.starts_with("invalid api token"), "{err}");
        }
    }

    #[test]
    fn new_names_the_bad_part() {
        let err = ApiToken::new("root@p", "castellan", "SECRETVALUE").map(|_| ());
        assert!(
            matches!(&err, Err(Error::Config(m)) if m.starts_with("invalid api token realm \"p\"")),
            "{err:?}"
        );
        let err = ApiToken::new("root@pam", "castellan", "SECRET VALUE").map(|_| ());
        assert!(
            matches!(&err, Err(Error::Config(m)) if m == "invalid api token secret: must be printable ascii without spaces"),
            "{err:?}"
        );
    }

    #[test]
    fn debug_and_display_redact_the_secret() -> Result<(), Error> {
        let t: ApiToken = format!("root@pam!castellan={SECRET}").parse()?;
        let debug = format!("{t:?} {t:#?}");
        let display = t.to_string();
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!display.contains(SECRET), "{display}");
        assert!(debug.contains("<redacted>"));
        assert_eq!(display, "root@pam!castellan");
        let header = format!("{:?}", t.header_value()?);
        assert!(!header.contains(SECRET), "{header}");
        Ok(())
    }
}
