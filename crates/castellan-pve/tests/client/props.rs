//! Property tests of the parsers that read untrusted text: UPIDs, fingerprints, tokens.

use castellan_pve::{ApiToken, Fingerprint, Upid};
use proptest::prelude::*;

proptest! {
    #[test]
    fn upids_round_trip(
        node in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
        pid in any::<u32>(),
        pstart in 0u64..0xF_FFFF_FFFF,
        starttime in 0i64..0xFFFF_FFFF,
        kind in "[a-z]{2,12}",
        id in "[a-z0-9.-]{0,12}",
        user in "[a-z]{1,8}@(pam|pve)(![a-z][a-z0-9_-]{1,10})?",
    ) {
        let upid = Upid::new(&node, pid, pstart, starttime, &kind, &id, &user)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again: Upid = upid.to_string().parse().map_err(|e: castellan_pve::Error| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again, &upid);
        prop_assert_eq!(again.node(), node.as_str());
        prop_assert_eq!(again.pid(), pid);
        prop_assert_eq!(again.pstart(), pstart);
        prop_assert_eq!(again.starttime(), starttime);
        prop_assert_eq!(again.kind(), kind.as_str());
        prop_assert_eq!(again.id(), id.as_str());
        prop_assert_eq!(again.user(), user.as_str());
    }

    #[test]
    fn upid_parsing_never_panics(s in "\\PC{0,80}") {
        let _ = s.parse::<Upid>();
        let _ = format!("UPID:{s}").parse::<Upid>();
    }

    #[test]
    fn fingerprints_round_trip(bytes in any::<[u8; 32]>(), lower in any::<bool>(), colons in any::<bool>()) {
        let fp = Fingerprint(bytes);
        let mut text = fp.to_string();
        if !colons {
            text = text.replace(':', "");
        }
        if lower {
            text = text.to_lowercase();
        }
        let parsed: Fingerprint = text.parse().map_err(|e: castellan_pve::Error| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, fp);
    }

    #[test]
    fn tokens_parse_and_never_show_their_secret(
        user in "[a-z][a-z0-9._-]{0,15}",
        realm in "(pam|pve|ldap-corp)",
        name in "[A-Za-z][A-Za-z0-9._-]{1,20}",
        secret in "[!-~]{8,40}",
    ) {
        let text = format!("{user}@{realm}!{name}={secret}");
        let token: ApiToken = text.parse().map_err(|e: castellan_pve::Error| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(token.user(), user.as_str());
        prop_assert_eq!(token.realm(), realm.as_str());
        prop_assert_eq!(token.token_name(), name.as_str());
        let shown = format!("{token} {token:?}");
        // A secret short enough to occur by chance in the id is not a leak.
        if !format!("{user}@{realm}!{name} ApiToken user realm token_name secret <redacted>").contains(secret.as_str()) {
            prop_assert!(!shown.contains(secret.as_str()), "{}", shown);
        }
    }

    #[test]
    fn token_parse_errors_never_echo_a_secret(prefix in "\\PC{0,20}", secret in "[A-Z]{12}") {
        let text = format!("{prefix}={secret}");
        if let Err(e) = text.parse::<ApiToken>() {
            prop_assert!(!e.to_string().contains(secret.as_str()), "{}", e);
        }
    }
}
