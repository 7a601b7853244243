//! A throwaway PostgreSQL server for the test suite: a fresh cluster in a private
//! temporary directory (random name, mode 0700, its socket inside), listening on a free
//! loopback port only, with a random password for its one superuser (so another local
//! user cannot log in and run programs as the server), no durability (the data is thrown
//! away). Stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root, so when xtask runs as root the cluster belongs to
//! the `postgres` user (made by Debian's package) and every server command runs as it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context as _, bail};

/// The environment variable the tests read the server's URL from.
pub const ENV: &str = "CASTELLAN_TEST_POSTGRES";

/// The newest installed server's `bin` directory (Debian keeps it off the PATH).
pub fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    password: String,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl Cluster {
    /// Makes and starts a cluster.
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = bin_dir().context("no PostgreSQL server installed (package postgresql)")?;
        let as_postgres = is_root();
        let temp = tempfile::Builder::new()
            .prefix("castellan-test-pg-")
            .tempdir()
            .context("cannot make a directory for PostgreSQL")?;
        let dir = temp.path().to_owned();
        let password = random_hex()?;
        std::fs::write(dir.join("pwfile"), format!("{password}\n"))?;
        if as_postgres {
            super::run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir),
            )?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Cluster {
            _temp: temp,
            password,
            dir,
            bin,
            as_postgres,
            port,
        };
        cluster.pg(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "castellan",
                "-A",
                "scram-sha-256",
                "--pwfile",
                "pwfile",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=500",
            cluster.dir.display()
        );
        let log = cluster.dir.join("server.log");
        cluster.pg(
            "pg_ctl",
            &[
                "-D",
                &cluster.data(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )?;
        eprintln!(
            "xtask: PostgreSQL on 127.0.0.1:{port} ({})",
            cluster.dir.display()
        );
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args).current_dir(&self.dir);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", path.display()))?;
        if !out.status.success() {
            bail!(
                "{tool} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The URL of its maintenance database; tests create databases of their own.
    pub fn url(&self) -> String {
        format!(
            "postgres://castellan:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        if let Err(e) = self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]) {
            eprintln!("xtask: stopping PostgreSQL: {e:#}");
        }
    }
}

/// 32 random hex digits, from the kernel.
fn random_hex() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
