//! Repository automation: `cargo xtask test` (the whole suite, as CI runs it),
//! `cargo xtask standalone` (no tracked file reaches outside the repository) and
//! `cargo xtask bench` (every benchmark, figures for BENCHMARKS.md).

mod deb;
mod postgres;
mod standalone;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

const USAGE: &str = "usage: cargo xtask <test|standalone|bench|setup|deb>
  setup       install the system packages the tests use (Debian; needs root), if missing
  test        setup, then the standalone check, format check, clippy (warnings are errors)
              and every test (with a throwaway PostgreSQL on loopback for the hub's store),
              then the Debian package's install test in a clean container
  deb         build the Debian package (target/debian/), release profile unless
              --profile NAME says otherwise
  deb-test    build it (dev profile) and install, use and remove it in a clean container
  standalone  check that no tracked file links to or reads from outside the repository
  bench       every benchmark (criterion and the convergence bench), in release mode";

/// System commands the test suite needs, with the Debian package that provides each.
const SYSTEM_DEPS: &[(&str, &str)] = &[
    ("ssh-keygen", "openssh-client"),
    // The ledger's seed-oracle test runs the seed's own Python generator.
    ("python3", "python3"),
    // The inbox and state tests make FIFOs and take locks from outside the process.
    ("mkfifo", "coreutils"),
    ("flock", "util-linux"),
    // The progress test runs the CLI under a pseudo-terminal.
    ("script", "bsdutils"),
    // The Docker backend's tests build their own tiny image from a static C program
    // (no registry is reachable).
    ("gcc", "gcc"),
    // The packaging tests verify and rate the systemd units with the real tool.
    ("systemd-analyze", "systemd"),
    // The Debian package: built by dpkg-deb, stripped by objcopy, tested in a container
    // of a minimal Debian that debootstrap makes.
    ("dpkg-deb", "dpkg"),
    ("objcopy", "binutils"),
    ("gzip", "gzip"),
    ("debootstrap", "debootstrap"),
    // The hub's web UI is tested in a real headless Chromium through WebDriver.
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
];

/// Files the test suite needs, with the Debian package that provides each.
const SYSTEM_FILES: &[(&str, &str)] = &[
    // `gcc -static` links against it.
    ("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
    // Text in the UI's screenshots (Chromium is installed without its recommended fonts).
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "fonts-dejavu-core",
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("test") => setup().and_then(|()| test()),
        Some("standalone") => standalone_cmd(),
        Some("bench") => bench(&args[1..]),
        Some("deb-test") => deb::install_test(),
        Some("deb") => match args.get(1..) {
            Some([]) | None => deb::build("release").map(|_| ()),
            Some([flag, profile]) if flag == "--profile" => deb::build(profile).map(|_| ()),
            Some(_) => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn setup() -> anyhow::Result<()> {
    let missing: Vec<&str> = SYSTEM_DEPS
        .iter()
        .filter(|(cmd, _)| !have(cmd))
        .map(|(_, pkg)| *pkg)
        .chain(
            SYSTEM_FILES
                .iter()
                .filter(|(file, _)| !Path::new(file).exists())
                .map(|(_, pkg)| *pkg),
        )
        // The hub's PostgreSQL store is tested against a real server.
        .chain(postgres::bin_dir().is_none().then_some("postgresql"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        bail!("missing system packages {missing:?} and no apt-get to install them");
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// The repository root (xtask lives one level below it).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

fn standalone_cmd() -> anyhow::Result<()> {
    let n = standalone::check(&repo_root())?;
    eprintln!("xtask: standalone: {n} files checked, nothing reaches outside the repository");
    Ok(())
}

/// Under `CI=true` the Docker backend's tests need a running Docker Engine: say so at
/// once, clearly, instead of failing in the middle of the suite.
fn docker_engine() -> anyhow::Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !up && ci {
        bail!(
            "the Docker Engine is not running (or `docker` is missing), and CI=true: the \
             Docker backend's tests run against the real engine; start it (for example \
             `systemctl start docker`) and run again"
        );
    }
    if !up {
        eprintln!("xtask: note: no Docker Engine answers; the Docker backend's tests will skip");
    }
    Ok(())
}

fn test() -> anyhow::Result<()> {
    docker_engine()?;
    standalone_cmd()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    lean_binary()?;
    // A throwaway PostgreSQL for the hub's store tests, stopped when the tests end.
    let pg = postgres::Cluster::start()?;
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .env(postgres::ENV, pg.url()))?;
    drop(pg);
    // Doc tests are not part of --all-targets.
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    deb::install_test()
}

/// The packaged binary (`castellan` without its default `demo` feature) builds, clippy
/// clean, and links no simulator code: `pvesim` is not among its dependencies.
fn lean_binary() -> anyhow::Result<()> {
    run(cargo().args([
        "clippy",
        "-p",
        "castellan",
        "--no-default-features",
        "--bins",
        "--",
        "-D",
        "warnings",
    ]))?;
    let tree = cargo()
        .args([
            "tree",
            "-p",
            "castellan",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .context("cannot run cargo tree")?;
    if !tree.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&tree.stderr)
        );
    }
    let deps = String::from_utf8_lossy(&tree.stdout);
    if let Some(line) = deps.lines().find(|l| l.starts_with("pvesim ")) {
        bail!(
            "the packaged castellan links the simulator ({line}); keep it behind the demo feature"
        );
    }
    eprintln!("xtask: the packaged castellan links no simulator");
    Ok(())
}

fn bench(extra: &[String]) -> anyhow::Result<()> {
    // The hub's long-poll benchmark measures PostgreSQL too.
    let pg = postgres::Cluster::start()?;
    run(cargo()
        .args(["bench", "--workspace"])
        .args(extra)
        .env(postgres::ENV, pg.url()))
}

#[cfg(test)]
mod tests {
    /// The repository itself passes `cargo xtask standalone`.
    #[test]
    fn the_repository_stands_on_its_own() {
        if let Err(e) = super::standalone::check(&super::repo_root()) {
            panic!("{e:#}");
        }
    }
}
