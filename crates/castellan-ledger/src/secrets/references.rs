//! References to secrets: pointers into a secret manager, which are exactly the redacted
//! evidence an owner is asked for, and never secrets themselves.
//!
//! [`spans`] finds them in a text. The scanner drops a match of a value-checked rule
//! (`filter:` other than `none`) or an entropy token that lies wholly inside one, so
//! `secret:` inside an AWS ARN or `api-token:/etc/credstore/x` after `LoadCredential=` is
//! not read as an assignment. A secret *beside* a reference (`op://ops/db/password, value
//! Xk9...`) lies outside the span and is still found; provider token formats (`ghp_`,
//! `AKIA`, ...) are found even inside one.
//!
//! The forms recognised (each bounded so that it cannot swallow a `=value` after it):
//!
//! | store | form |
//! |---|---|
//! | AWS Secrets Manager, SSM Parameter Store, KMS | `arn:aws[-cn\|-us-gov]:secretsmanager\|ssm\|kms:...`, `{{resolve:secretsmanager\|ssm\|ssm-secure:...}}` |
//! | GCP Secret Manager | `projects/P/secrets/S[/versions/V]`, `sm://P/S` |
//! | Azure Key Vault | `https://NAME.vault.azure.net/...`, `@Microsoft.KeyVault(...)`, `akv://`, `keyvault:` |
//! | HashiCorp Vault | `vault:PATH[#key]`, `vault://`, `ref+vault://` (and other vals `ref+` backends) |
//! | sops | `ENC[AES256_GCM,data:...,type:...]` (ciphertext), `sops:PATH` |
//! | 1Password, Bitwarden, Doppler, Infisical, Conjur, gopass | `op://`, `bw://`, `doppler://`, `infisical://`, `conjur:variable:`, `gopass:` |
//! | systemd credentials | `LoadCredential=`, `LoadCredentialEncrypted=`, `ImportCredential=` (never `SetCredential=`, which carries the value) |
//! | CI | `${{ secrets.NAME }}` |
//! | environment and files | `env:NAME`, `file:/path` |

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Characters of a reference path: no whitespace, quotes, `=`, `,` or `;`, so that a value
/// written after a reference stays outside it.
const PATH: &str = r"[A-Za-z0-9_./#:@+*%~-]";

static REFERENCE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let path = PATH;
    let forms = [
        format!(r"\barn:aws(?:-cn|-us-gov)?:(?:secretsmanager|ssm|kms):{path}+"),
        r"\{\{resolve:(?:secretsmanager|ssm|ssm-secure):[^}\s]*\}\}".to_owned(),
        r"\bprojects/[A-Za-z0-9_.-]+/secrets/[A-Za-z0-9_.-]+(?:/versions/[A-Za-z0-9_.-]+)?".to_owned(),
        r"@Microsoft\.KeyVault\([^)\s]*\)".to_owned(),
        format!(r"\bhttps://[A-Za-z0-9-]+\.vault\.(?:azure\.net|usgovcloudapi\.net|azure\.cn)/{path}*"),
        format!(
            r"(?i)\b(?:ref\+[a-z0-9]+|vault|op|bw|sm|akv|doppler|infisical|gopass)://{path}+"
        ),
        format!(
            r"(?i)(?:^|[^A-Za-z0-9_])(?:vault|keyvault|sops|ssm|gopass|conjur:variable):{path}+"
        ),
        r"ENC\[[A-Z0-9_]+,data:[A-Za-z0-9+/=]*,iv:[A-Za-z0-9+/=]*,tag:[A-Za-z0-9+/=]*,type:[a-z]+\]"
            .to_owned(),
        format!(r"\b(?:LoadCredential|LoadCredentialEncrypted|ImportCredential)={path}+"),
        r"\$\{\{\s*secrets\.[A-Za-z0-9_]+\s*\}\}".to_owned(),
        r"(?:^|[^A-Za-z0-9_])env:[A-Za-z_][A-Za-z0-9_]*\b".to_owned(),
        format!(r"(?:^|[^A-Za-z0-9_])file:/{path}+"),
    ];
    let alternation = forms
        .iter()
        .map(|f| format!("(?:{f})"))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&alternation)
        .map_err(|error| {
            tracing::warn!(event = "secret_rule_skipped", %error, "secret-reference pattern");
        })
        .ok()
});

/// The spans of `text` that are references to secrets.
pub(super) fn spans(text: &str) -> Vec<Range<usize>> {
    let Some(re) = REFERENCE.as_ref() else {
        return Vec::new();
    };
    re.find_iter(text).map(|m| m.range()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> bool {
        spans(text)
            .iter()
            .any(|r| text[r.clone()].trim_start_matches(' ') == text)
    }

    #[test]
    fn references_are_whole_spans() {
        for r in [
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db/password-AbCdEf",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/app/db_password",
            "{{resolve:ssm-secure:/prod/app/db-password:7}}",
            "projects/ops-prod/secrets/db-password/versions/latest",
            "@Microsoft.KeyVault(SecretUri=https://kv-ops.vault.azure.net/secrets/db/)",
            "https://kv-ops.vault.azure.net/secrets/db-password/0123456789abcdef",
            "vault:secret/data/ops/db#password",
            "ref+vault://secret/data/db#/password",
            "op://ops-vault/postgres/password",
            "ENC[AES256_GCM,data:abcd,iv:ZGVm,tag:Z2hp,type:str]",
            "LoadCredential=db-password:/etc/credstore/db-password",
            "ImportCredential=app.*",
            "${{ secrets.DEPLOY_TOKEN }}",
            "env:DB_PASSWORD",
            "file:/run/secrets/db_password",
        ] {
            assert!(whole(r), "{r}: {:?}", spans(r));
        }
    }

    #[test]
    fn a_value_after_a_reference_is_outside_it() {
        let text = "vault:secret/data/db#password=hunter2";
        let s = spans(text);
        assert_eq!(s.len(), 1);
        assert!(!text[s[0].clone()].contains("hunter2"));
        assert!(spans("SetCredential=db:hunter2").is_empty());
        assert!(spans("environment: prod").is_empty());
    }
}
