//! The agent on a Docker host, end to end: the real `castellan` binary (`agent --once`)
//! over the real Docker Engine, with a locally built image (no registry is reachable),
//! keys and signatures from the real `ssh-keygen`. Declared containers converge from
//! drift on their own; removing a container that holds a volume, and removing the volume,
//! wait for signed ops, run once when signed, and a replay does nothing. Without an
//! engine or ssh-keygen the test prints a note and passes, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use castellan_testkit::{
    DockerCleanup, idle_image, need_docker, need_ssh_keygen, run_ok, ssh_keygen,
};

/// A host name (the agent's node, and so the owner label of what it creates) unique to
/// this test; every container and volume under it is removed on drop.
struct Host {
    name: String,
    dir: tempfile::TempDir,
    _cleanup: DockerCleanup,
}

impl Host {
    fn new(tag: &str) -> Host {
        let name = format!("cst{tag}-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("agent.toml"),
            format!(
                "node = \"{name}\"\ndata_dir = \"state\"\n[docker]\n\
                 [desired]\nfile = \"desired.toml\"\n[signers]\nconfig = \"signers.toml\"\n"
            ),
        )
        .unwrap();
        let st = Command::new(ssh_keygen().unwrap())
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f"])
            .arg(d.join("alice"))
            .status()
            .unwrap();
        assert!(st.success());
        let public = std::fs::read_to_string(d.join("alice.pub")).unwrap();
        std::fs::write(
            d.join("allowed_signers"),
            format!("alice@example.com {public}"),
        )
        .unwrap();
        std::fs::write(
            d.join("signers.toml"),
            "allowed_signers = \"allowed_signers\"\n[roles]\n\"alice@example.com\" = \"operational\"\n",
        )
        .unwrap();
        Host {
            _cleanup: DockerCleanup {
                prefix: name.clone(),
            },
            name,
            dir,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn c(&self, what: &str) -> String {
        format!("{}-{what}", self.name)
    }

    fn declare(&self, body: &str) {
        std::fs::write(
            self.path("desired.toml"),
            format!("node = \"{}\"\n{body}", self.name),
        )
        .unwrap();
    }

    fn castellan(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_castellan"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// `castellan agent --once --json`: its exit code and report.
    fn agent_once(&self) -> (i32, serde_json::Value) {
        let out = self.castellan(&["agent", "--once", "--json", "--config", "agent.toml"]);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "agent --once printed no report ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// Signs a pending payload with `castellan op sign` and submits it to the inbox.
    fn sign_and_submit(&self, payload: &Path) {
        let out = self.castellan(&[
            "op",
            "sign",
            payload.to_str().unwrap(),
            "--key",
            self.path("alice").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.castellan(&[
            "op",
            "submit",
            payload.to_str().unwrap(),
            "--inbox",
            "state/inbox",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        let out = self.castellan(&["audit", "export", "--data-dir", "state"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// How many records of `event` name `target`.
    fn audited(&self, event: &str, target: &str) -> usize {
        self.audit()
            .iter()
            .filter(|r| r["event"]["event"] == event && r["event"]["target"] == target)
            .count()
    }
}

fn docker(args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(Command::new("docker").args(args)).stdout)
        .trim()
        .to_owned()
}

fn exists(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_docker_host_converges_and_volume_removal_waits_for_a_signature_and_runs_once() {
    need_docker!();
    need_ssh_keygen!();
    let image = idle_image();
    let host = Host::new("agent");
    let (web, cache, data) = (host.c("web"), host.c("cache"), host.c("data"));
    let declared = |web_env: &str| {
        format!(
            "[[container]]\nname = \"{web}\"\nimage = \"{image}\"\nenv = {{ MODE = \"{web_env}\" }}\n\
             volumes = {{ \"{data}\" = \"/data\" }}\nrestart = \"unless-stopped\"\n\
             [[container]]\nname = \"{cache}\"\nimage = \"{image}\"\n"
        )
    };

    // 1. Declared, absent: planned, then created and started on the declaration's word.
    host.declare(&declared("a"));
    let plan = host.castellan(&["plan", "-c", "agent.toml", "--detailed-exitcode"]);
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains(&web) && shown.contains("provision"),
        "{shown}"
    );
    assert!(!exists(&["inspect", &web]), "plan changes nothing");
    let (code, report) = host.agent_once();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["converged"], true);
    for c in [&web, &cache] {
        assert_eq!(docker(&["inspect", "-f", "{{.State.Running}}", c]), "true");
        assert_eq!(
            docker(&[
                "inspect",
                "-f",
                "{{index .Config.Labels \"io.castellan.owner\"}}",
                c
            ]),
            host.name
        );
    }
    let web_id = docker(&["inspect", "-f", "{{.Id}}", &web]);
    assert_eq!(
        host.audited("action_allowed", &format!("container/{cache}")),
        2
    );

    // 2. Drift: one stopped behind castellan's back, the other's declaration changed.
    docker(&["stop", "-t", "1", &cache]);
    host.declare(&declared("b"));
    let (code, report) = host.agent_once();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &cache]),
        "true"
    );
    let new_id = docker(&["inspect", "-f", "{{.Id}}", &web]);
    assert_ne!(new_id, web_id, "re-created on a changed declaration");
    assert!(
        docker(&["inspect", "-f", "{{range .Config.Env}}{{.}} {{end}}", &web]).contains("MODE=b")
    );
    assert!(
        exists(&["volume", "inspect", &data]),
        "a named volume survives re-creation"
    );

    // 3. Removing the container that holds the volume, and the volume: both wait.
    host.declare(&format!(
        "[[container]]\nname = \"{web}\"\nensure = \"absent\"\n\
         [[container]]\nname = \"{cache}\"\nimage = \"{image}\"\n\
         [[volume]]\nname = \"{data}\"\nensure = \"absent\"\n"
    ));
    let plan = host.castellan(&["plan", "-c", "agent.toml"]);
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(
        shown.contains("Destructive")
            && shown.contains(&format!("container/{web}"))
            && shown.contains(&format!("volume/{data}")),
        "{shown}"
    );
    let (code, report) = host.agent_once();
    assert_eq!(
        code, 1,
        "pending signatures are not convergence: {report:#}"
    );
    let pending = report["containers"]["pending"].as_array().unwrap().clone();
    assert_eq!(pending.len(), 2, "{report:#}");
    assert!(
        exists(&["inspect", &web]),
        "nothing removed without a signature"
    );
    assert!(exists(&["volume", "inspect", &data]));
    let destroy = host.path(&format!(
        "state/pending/{}-container-{web}-destroy.op",
        host.name
    ));
    let remove = host.path(&format!(
        "state/pending/{}-volume-{data}-remove_volume.op",
        host.name
    ));
    let text = std::fs::read_to_string(&destroy).unwrap();
    assert!(
        text.contains(&format!("target = \"container/{web}\"")),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(&remove)
            .unwrap()
            .contains(&format!("target = \"volume/{data}\""))
    );
    // Running it again offers the same payloads and still removes nothing.
    let (code, _) = host.agent_once();
    assert_eq!(code, 1);
    assert!(exists(&["inspect", &web]));

    // 4. Signed and submitted: each runs, once.
    let kept_destroy = std::fs::read(&destroy).unwrap();
    host.sign_and_submit(&destroy);
    host.sign_and_submit(&remove);
    let (code, report) = host.agent_once();
    assert_eq!(code, 0, "{report:#}");
    assert!(!exists(&["inspect", &web]), "the signed destroy ran");
    assert!(
        !exists(&["volume", "inspect", &data]),
        "the signed volume removal ran"
    );
    assert!(
        exists(&["inspect", &cache]),
        "what was not named is untouched"
    );
    assert_eq!(
        host.audited("signature_accepted", &format!("container/{web}")),
        1
    );
    assert_eq!(
        host.audited("signature_accepted", &format!("volume/{data}")),
        1
    );
    assert_eq!(
        host.audited("action_succeeded", &format!("volume/{data}")),
        1
    );

    // 5. A replay of the used op does nothing but get refused.
    let sig = std::fs::read(destroy.with_extension("op.sig")).unwrap();
    std::fs::write(host.path("state/inbox/again.op.sig"), sig).unwrap();
    std::fs::write(host.path("state/inbox/again.op"), &kept_destroy).unwrap();
    let (code, report) = host.agent_once();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        host.audited("signature_accepted", &format!("container/{web}")),
        1
    );
    assert!(
        host.path("state/inbox/done/again.op").exists(),
        "the replay is settled as already executed, never executed again"
    );
    assert!(!host.path("state/inbox/again.op").exists());
}

#[test]
fn an_op_never_removes_a_container_put_in_the_approved_ones_place_nor_a_foreign_one() {
    need_docker!();
    need_ssh_keygen!();
    let image = idle_image();
    let host = Host::new("swap");
    let (web, data, foreign) = (host.c("web"), host.c("data"), host.c("foreign"));
    host.declare(&format!(
        "[[container]]\nname = \"{web}\"\nimage = \"{image}\"\nvolumes = {{ \"{data}\" = \"/data\" }}\n"
    ));
    let (code, report) = host.agent_once();
    assert_eq!(code, 0, "{report:#}");
    // Someone else's container, named like castellan's, that nobody declared.
    docker(&["run", "-d", "--name", &foreign, &image]);

    host.declare(&format!(
        "[[container]]\nname = \"{web}\"\nensure = \"absent\"\n\
         [[container]]\nname = \"{foreign}\"\nensure = \"absent\"\n"
    ));
    let (code, report) = host.agent_once();
    assert_eq!(code, 1, "{report:#}");
    let notices = report["containers"]["notices"].to_string();
    assert!(
        notices.contains(&foreign) && notices.contains("never touched"),
        "{notices}"
    );
    let payload = host.path(&format!(
        "state/pending/{}-container-{web}-destroy.op",
        host.name
    ));
    assert!(payload.exists());
    assert!(
        !host
            .path(&format!(
                "state/pending/{}-container-{foreign}-destroy.op",
                host.name
            ))
            .exists(),
        "nothing is offered for signing on a container castellan did not create"
    );
    host.sign_and_submit(&payload);

    // Before the agent acts, the approved container is swapped for another one with the
    // same name and labels (a different container: its id differs).
    let labels = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}",
        &web,
    ]);
    docker(&["rm", "-f", &web]);
    let mut args = vec!["run", "-d", "--name", web.as_str(), "-v"];
    let mount = format!("{data}:/data");
    args.push(&mount);
    let label_args: Vec<String> = labels.split_whitespace().map(str::to_owned).collect();
    for l in &label_args {
        args.push("--label");
        args.push(l);
    }
    args.push(&image);
    docker(&args);
    let swapped = docker(&["inspect", "-f", "{{.Id}}", &web]);

    let (code, report) = host.agent_once();
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}}", &web]),
        swapped,
        "the container put in its place is still there"
    );
    assert!(
        exists(&["inspect", &foreign]),
        "the foreign container is untouched"
    );
    assert_eq!(
        host.audited("signature_accepted", &format!("container/{web}")),
        0
    );
    let rejected: Vec<_> = host
        .audit()
        .into_iter()
        .filter(|r| r["event"]["event"] == "op_rejected")
        .collect();
    assert!(
        rejected
            .iter()
            .any(|r| r["event"]["reason"] == "stale_precondition"),
        "{rejected:#?}"
    );
    // A fresh payload is offered, bound to the container now there.
    let fresh = std::fs::read_to_string(&payload).unwrap();
    assert!(fresh.contains(&format!("target = \"container/{web}\"")));
}

/// Runs `castellan agent --once` until it reaches crash point `step` of a signed
/// operation, then SIGKILLs it.
fn kill_at(host: &Host, step: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_castellan"));
    cmd.args(["agent", "--once", "--config", "agent.toml"])
        .current_dir(host.dir.path());
    castellan_testkit::kill_at_crashpoint(cmd, step);
}

/// Killed at each step of a signed container removal, the restarted agent settles it:
/// the container is removed exactly once, nothing is left in flight, and the audit chain
/// holds. (Killed after the engine removed it but before the call was journaled, the
/// engine keeps no task list: the target being gone is what settles it.)
#[test]
fn a_signed_container_removal_killed_at_any_step_runs_once() {
    need_docker!();
    need_ssh_keygen!();
    let image = idle_image();
    for step in [
        "accepted",
        "intent",
        "stopped",
        "posted",
        "dispatched",
        "terminal",
    ] {
        let host = Host::new(&format!("crash{}", step.len()));
        let (web, data) = (host.c("web"), host.c("data"));
        host.declare(&format!(
            "[[container]]\nname = \"{web}\"\nimage = \"{image}\"\nvolumes = {{ \"{data}\" = \"/data\" }}\n"
        ));
        assert_eq!(host.agent_once().0, 0);
        host.declare(&format!(
            "[[container]]\nname = \"{web}\"\nensure = \"absent\"\n"
        ));
        assert_eq!(host.agent_once().0, 1, "pending");
        let payload = host.path(&format!(
            "state/pending/{}-container-{web}-destroy.op",
            host.name
        ));
        host.sign_and_submit(&payload);
        kill_at(&host, step);
        let (code, report) = host.agent_once();
        assert_eq!(code, 0, "step {step}: converged after recovery: {report:#}");
        assert!(!exists(&["inspect", &web]), "step {step}: removed");
        assert!(
            exists(&["volume", "inspect", &data]),
            "step {step}: its volume kept"
        );
        let store = castellan_store::Store::open_readonly(&host.path("state")).unwrap();
        castellan_store::verify_chain(&store).unwrap();
        assert!(store.in_flight().unwrap().is_empty(), "step {step}");
        let target = castellan_core::Target::container(&web).unwrap();
        let destroys: Vec<_> = store
            .intents_for(&target)
            .unwrap()
            .into_iter()
            .filter(|i| i.destructive)
            .collect();
        assert_eq!(
            destroys.len(),
            1,
            "step {step}: one signed intent: {destroys:#?}"
        );
        assert_eq!(
            destroys[0].state,
            castellan_store::IntentState::Succeeded,
            "step {step}: {destroys:#?}"
        );
        // Killed after the acceptance was audited but before the intent, the op is
        // accepted again on restart; it is journaled, and carried out, once.
        let accepted = host.audited("signature_accepted", &target.to_string());
        assert_eq!(
            accepted,
            if step == "accepted" { 2 } else { 1 },
            "step {step}"
        );
    }
}
