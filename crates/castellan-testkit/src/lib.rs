//! Helpers shared by castellan's test suites: keys made by the real `ssh-keygen`, and the
//! rule that a test needing it fails under `CI=true` when it is missing (elsewhere it
//! prints a note and returns early).
//!
//! A dev-dependency only. It depends on no castellan crate, so any crate's tests can use it.

// Test support: a failed command is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Whether this run is CI (`CI=true`), where a missing tool fails instead of skipping.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The `ssh-keygen` on `PATH`, or `None` (after a note) when it is missing outside CI.
/// Under `CI=true` a missing ssh-keygen fails the test.
pub fn ssh_keygen() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("ssh-keygen"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !ci(),
            "ssh-keygen not found on PATH, and CI=true: install openssh-client"
        );
        eprintln!("note: ssh-keygen not found on PATH; skipping this test");
    }
    found
}

/// Returns from the test early when ssh-keygen is missing (outside CI; under `CI=true`
/// it fails).
#[macro_export]
macro_rules! need_ssh_keygen {
    () => {
        if $crate::ssh_keygen().is_none() {
            return;
        }
    };
}

/// Debian's `chromedriver` and `chromium`, or `None` (after a note) when either is missing
/// outside CI. Under `CI=true` a missing one fails the test (`cargo xtask test` installs
/// `chromium` and `chromium-driver`).
pub fn chromium() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("chromedriver"), find("chromium")) {
        (Some(driver), Some(browser)) => Some((driver, browser)),
        _ => {
            assert!(
                !ci(),
                "chromedriver or chromium not found on PATH, and CI=true: install chromium and chromium-driver"
            );
            eprintln!("note: chromedriver or chromium not found on PATH; skipping this test");
            None
        }
    }
}

/// Whether a Docker Engine answers. Under `CI=true` a missing engine fails the test;
/// elsewhere it prints a note.
pub fn docker_engine() -> bool {
    let up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            !ci(),
            "no Docker Engine answers, and CI=true: start the Docker Engine"
        );
        eprintln!("note: no Docker Engine answers; skipping this test");
    }
    up
}

/// Returns from the test early when no Docker Engine answers (outside CI; under
/// `CI=true` it fails).
#[macro_export]
macro_rules! need_docker {
    () => {
        if !$crate::docker_engine() {
            return;
        }
    };
}

/// The tiny local test image `castellan-test/idle:1`, built once per machine: a static C
/// program that waits for SIGTERM, compiled with `gcc -static` and imported with
/// `docker import` (no registry is reachable). Returns its reference.
pub fn idle_image() -> String {
    const IMAGE: &str = "castellan-test/idle:1";
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", IMAGE])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if present {
            return;
        }
        let dir = tempfile_dir();
        let src = dir.join("idle.c");
        std::fs::write(
            &src,
            "#include <signal.h>\n#include <unistd.h>\n\
             static void bye(int s) { (void)s; _exit(0); }\n\
             int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }\n",
        )
        .unwrap();
        let root = dir.join("root");
        std::fs::create_dir_all(&root).unwrap();
        run_ok(
            Command::new("gcc")
                .args(["-static", "-Os", "-s", "-o"])
                .arg(root.join("idle"))
                .arg(&src),
        );
        import_rootfs(&root, IMAGE, "ENTRYPOINT [\"/idle\"]");
        let _ = std::fs::remove_dir_all(&dir);
    });
    IMAGE.to_owned()
}

/// Makes the local image `name` from the root filesystem assembled in `root` (no registry
/// is reachable: `docker import` of a tar of it), with one Dockerfile instruction
/// (`ENTRYPOINT [...]`, `ENV ...`).
pub fn import_rootfs(root: &Path, name: &str, instruction: &str) {
    let tar = root.with_extension("tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    run_ok(
        Command::new("docker")
            .args(["import", "-c", instruction])
            .arg(&tar)
            .arg(name),
    );
    let _ = std::fs::remove_file(&tar);
}

/// A fresh private directory under the system temporary directory.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "castellan-testkit-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A key pair made by ssh-keygen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The private key file (no passphrase).
    pub private: PathBuf,
    /// The public key file, `private.pub`.
    pub public: PathBuf,
    /// The public key line, `type base64 comment`.
    pub line: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it (an oracle independent of castellan's).
    pub fingerprint: String,
}

/// `ssh-keygen -q -t TYPE [-b BITS] -N "" -C NAME -f DIR/NAME`.
pub fn keygen(dir: &Path, name: &str, ty: &str, bits: Option<u32>) -> Key {
    let private = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", ty, "-N", "", "-C", name, "-f"])
        .arg(&private);
    if let Some(b) = bits {
        cmd.args(["-b", &b.to_string()]);
    }
    run_ok(&mut cmd);
    load_key(&private)
}

/// A key pair ssh-keygen made earlier: `private` and `private.pub`.
pub fn load_key(private: &Path) -> Key {
    let mut public = private.as_os_str().to_owned();
    public.push(".pub");
    let public = PathBuf::from(public);
    let line = std::fs::read_to_string(&public)
        .unwrap_or_else(|e| panic!("{}: {e}", public.display()))
        .trim()
        .to_owned();
    let listed = run_ok(
        Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&public),
    );
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let fingerprint = listed
        .split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints a fingerprint")
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{listed}");
    Key {
        private: private.to_owned(),
        public,
        line,
        fingerprint,
    }
}

/// Removes, when dropped, every Docker container and volume whose name starts with its
/// prefix, whatever the test did (containers forcibly, with their anonymous volumes).
#[derive(Debug)]
pub struct DockerCleanup {
    /// The name prefix the test's containers and volumes share.
    pub prefix: String,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let list = |args: &[&str]| -> Vec<String> {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .filter(|l| l.starts_with(&self.prefix))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        for c in list(&["ps", "-a", "--format", "{{.Names}}"]) {
            let _ = Command::new("docker").args(["rm", "-f", "-v", &c]).output();
        }
        for v in list(&["volume", "ls", "--format", "{{.Name}}"]) {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &v])
                .output();
        }
    }
}

/// The environment variable naming the agent's crash point (`castellan_agent`'s
/// `CRASHPOINT_ENV`: the agent announces it on stderr and waits there to be killed).
pub const CRASHPOINT_ENV: &str = "CASTELLAN_CRASHPOINT";

/// Runs `cmd` (an agent) with crash point `step` until it announces reaching it, then
/// SIGKILLs it. Panics if it exits first or takes more than a minute.
pub fn kill_at_crashpoint(mut cmd: Command, step: &str) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .env(CRASHPOINT_ENV, step)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let want = format!("castellan-crashpoint: {step}");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&want) {
                let _ = tx.send(Ok(()));
                return;
            }
            seen.push(line);
        }
        let _ = tx.send(Err(seen.join("\n")));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(())) => {}
        Ok(Err(log)) => panic!("agent exited before reaching {step}:\n{log}"),
        Err(_) => panic!("agent did not reach {step} in time"),
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not exited");
}

/// The PostgreSQL server of the test run (`cargo xtask test` starts one on loopback and
/// names it in `CASTELLAN_TEST_POSTGRES`): each test takes a database of its own.
pub mod postgres {
    /// The variable naming the server's maintenance database.
    pub const ENV: &str = "CASTELLAN_TEST_POSTGRES";

    /// Whether a PostgreSQL test can run. Under `CI=true` it must: a missing server
    /// fails the test; elsewhere a note is printed and the test returns early.
    pub fn available() -> bool {
        if std::env::var_os(ENV).is_some() {
            return true;
        }
        assert!(
            !super::ci(),
            "{ENV} is not set and CI=true: run the suite with `cargo xtask test`, which starts \
             a PostgreSQL for it"
        );
        eprintln!("note: {ENV} is not set (run `cargo xtask test`); skipping a PostgreSQL test");
        false
    }

    /// A new, empty database on the test server; its URL.
    pub async fn fresh_database() -> String {
        let admin = std::env::var(ENV).expect("CASTELLAN_TEST_POSTGRES");
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        let conn = tokio::spawn(conn);
        let name = format!("castellan_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = conn.await;
        let mut url: url::Url = admin.parse().expect("a URL");
        url.set_path(&name);
        url.to_string()
    }
}
