//! `agent.toml` resolution: paths, token file, TLS choice, and refusals that name the
//! field and never echo the token's secret.

use std::path::Path;

use castellan_agent::AgentConfig;
use castellan_pve::TlsMode;

const SECRET: &str = "0b7d2c8e-5d4e-4bd6-9e0f-00000000beef";

fn load(text: &str, base: &Path) -> Result<AgentConfig, String> {
    AgentConfig::from_str_in(text, Path::new("agent.toml"), base).map_err(|e| e.to_string())
}

fn base_config(extra_pve: &str) -> String {
    format!(
        r#"
node = "pve-01"
data_dir = "state"
[pve]
url = "https://pve-01.example:8006"
{extra_pve}
[desired]
file = "desired.toml"
"#
    )
}

#[test]
fn resolves_relative_paths_and_token_file() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("token"),
        format!("root@pam!castellan={SECRET}\n"),
    )?;
    let cfg = load(
        &base_config(
            "token_file = \"token\"\nfingerprint = \"aa:BB:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99\"",
        ),
        dir.path(),
    )?;
    assert_eq!(cfg.node, "pve-01");
    assert_eq!(cfg.data_dir, dir.path().join("state"));
    assert_eq!(cfg.desired_file, dir.path().join("desired.toml"));
    assert!(matches!(
        cfg.client.as_ref().map(|c| &c.tls),
        Some(TlsMode::Fingerprint(_))
    ));
    assert_eq!(cfg.docker, None, "no [docker]: containers are not managed");
    assert_eq!(cfg.tuning.max_parallel, 8, "defaults apply");
    let shown = format!("{cfg:?}");
    assert!(!shown.contains(SECRET), "secret leaked into Debug: {shown}");
    Ok(())
}

#[test]
fn refusals_name_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = format!("token = \"root@pam!castellan={SECRET}\"");
    let cases = [
        (
            base_config(&format!("{token}\ncolour = 1")),
            "unknown field `colour`",
        ),
        (
            base_config(""),
            "pve.token: token or token_file is required",
        ),
        (
            base_config(&format!("{token}\ntoken_file = \"x\"")),
            "pve.token: give token or token_file, not both",
        ),
        (
            base_config(&format!("{token}\nfingerprint = \"zz\"\n")),
            "pve.fingerprint:",
        ),
        (
            base_config(&format!(
                "{token}\nfingerprint = \"{}\"\ninsecure = true",
                "ab".repeat(32)
            )),
            "pve: choose one of fingerprint, ca_file or insecure = true",
        ),
        (
            base_config("token_file = \"missing\""),
            "pve.token_file: cannot read",
        ),
        (
            base_config(&format!("token = \"root@pam={SECRET}\"")),
            "pve.token:",
        ),
        (
            base_config(&token).replace("https://pve-01.example:8006", "ftp://x"),
            "pve.url: must be an https:// (or http://) URL",
        ),
        (
            format!("{}\n[agent]\nmax_parallel = 0\n", base_config(&token)),
            "agent.max_parallel: must be at least 1",
        ),
        (
            format!(
                "{}\n[metrics]\nlisten = \"localhost\"\n",
                base_config(&token)
            ),
            "metrics.listen: \"localhost\" is not an address and port",
        ),
        (
            format!(
                "{}\n[metrics]\nlisten = \"127.0.0.1:9464\"\npath = \"/x\"\n",
                base_config(&token)
            ),
            "unknown field `path`",
        ),
    ];
    for (text, want) in cases {
        let err = load(&text, dir.path()).expect_err(want);
        assert!(err.contains(want), "want {want:?} in {err:?}");
        assert!(!err.contains(SECRET), "secret leaked: {err}");
    }
}

#[test]
fn docker_only_hosts_and_hosts_with_nothing_to_manage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = load(
        "node = \"docker-01\"\ndata_dir = \"state\"\n[docker]\nsocket = \"run/docker.sock\"\n\
         [desired]\nfile = \"desired.toml\"\n",
        dir.path(),
    )
    .expect("a [docker] host needs no [pve]");
    assert!(cfg.client.is_none());
    assert_eq!(
        cfg.docker.and_then(|d| d.socket),
        Some(dir.path().join("run/docker.sock"))
    );
    let err = load(
        "node = \"x\"\ndata_dir = \"state\"\n[desired]\nfile = \"d.toml\"\n",
        dir.path(),
    )
    .expect_err("nothing to manage")
    .to_string();
    assert!(err.contains("nothing to manage"), "{err}");
    let err = load(
        "node = \"x\"\ndata_dir = \"state\"\n[docker]\nhost = \"tcp://x\"\n[desired]\nfile = \"d.toml\"\n",
        dir.path(),
    )
    .expect_err("unknown field")
    .to_string();
    assert!(err.contains("unknown field `host`"), "{err}");
}
