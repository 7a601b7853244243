//! A declared Docker container: what castellan creates, and the hash that tells drift.
//! Part of the desired state (`[[container]]` in `desired.toml`, see
//! [`crate::desired`]); the Docker backend (`castellan-docker`) creates containers from it
//! and plans against it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// When Docker restarts a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never (Docker's default).
    #[default]
    No,
    /// Always, even after the daemon restarts.
    Always,
    /// Always, unless it was stopped on purpose.
    UnlessStopped,
    /// When it exits with an error.
    OnFailure,
}

impl Restart {
    /// The Engine API's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::Always => "always",
            Restart::UnlessStopped => "unless-stopped",
            Restart::OnFailure => "on-failure",
        }
    }
}

/// A published port: `host_port` on the host to `container_port/protocol`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PortMapping {
    /// The port inside the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on the host.
    pub host_port: u16,
    /// The host address to bind (`127.0.0.1`), or every address when `None`.
    pub host_ip: Option<String>,
}

/// One declared container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    /// Its name (unique on the host).
    pub name: String,
    /// The image reference (`registry/name:tag` or an id).
    pub image: String,
    /// The command, replacing the image's (`None`: the image's).
    pub command: Option<Vec<String>>,
    /// Environment variables. Serialised (plans, reports) with their values withheld:
    /// an environment often carries a password.
    #[serde(serialize_with = "withhold_values")]
    pub env: BTreeMap<String, String>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Labels (castellan adds its own two).
    pub labels: BTreeMap<String, String>,
    /// The restart policy.
    pub restart: Restart,
    /// Named volumes to mount: volume name to path in the container.
    pub volumes: BTreeMap<String, String>,
    /// Whether it should run.
    pub running: bool,
}

/// Serialises a map's keys with every value replaced by `"(withheld)"`.
fn withhold_values<S: serde::Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(map.keys().map(|k| (k, "(withheld)")))
}

/// A declaration castellan refuses to create.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    /// A name Docker would refuse, or one that could be read as something else.
    #[error("container or volume name {0:?} is not [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128)")]
    Name(String),
    /// A label in castellan's own namespace.
    #[error("label {0:?} is castellan's own (io.castellan.*)")]
    ReservedLabel(String),
    /// An empty image reference.
    #[error("container {0}: no image")]
    NoImage(String),
    /// An environment variable name with `=` or a NUL, or empty.
    #[error("container {0}: environment variable name {1:?} is not valid")]
    EnvName(String, String),
}

/// Whether Docker accepts `s` as a container or volume name.
pub fn valid_name(s: &str) -> bool {
    crate::target::valid_docker_name(s)
}

impl ContainerSpec {
    /// A running container of `image` named `name`, with nothing else declared.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            command: None,
            env: BTreeMap::new(),
            ports: Vec::new(),
            labels: BTreeMap::new(),
            restart: Restart::No,
            volumes: BTreeMap::new(),
            running: true,
        }
    }

    /// Checks what Docker or castellan would refuse, before anything is sent.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !valid_name(&self.name) {
            return Err(SpecError::Name(self.name.clone()));
        }
        if self.image.trim().is_empty() {
            return Err(SpecError::NoImage(self.name.clone()));
        }
        if let Some(k) = self.labels.keys().find(|k| k.starts_with("io.castellan.")) {
            return Err(SpecError::ReservedLabel(k.clone()));
        }
        if let Some(k) = self
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(SpecError::EnvName(self.name.clone(), k.clone()));
        }
        if let Some(v) = self.volumes.keys().find(|v| !valid_name(v)) {
            return Err(SpecError::Name(v.clone()));
        }
        Ok(())
    }

    /// The hash of everything the container is created from (not its run state, which
    /// changes without re-creation): SHA-256 over a length-prefixed encoding, lower-case
    /// hex. Kept in the container's labels; a different hash is drift.
    pub fn spec_hash(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |tag: &str, value: &str| {
            h.update(tag.as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value.as_bytes());
        };
        field("name", &self.name);
        field("image", &self.image);
        match &self.command {
            None => field("command", "-"),
            Some(args) => {
                field("command", &args.len().to_string());
                for a in args {
                    field("arg", a);
                }
            }
        }
        for (k, v) in &self.env {
            field("env", k);
            field("=", v);
        }
        let mut ports = self.ports.clone();
        ports.sort();
        for p in &ports {
            let mut s = String::new();
            let _ = write!(
                s,
                "{}/{}:{}@{}",
                p.container_port,
                p.protocol,
                p.host_port,
                p.host_ip.as_deref().unwrap_or("")
            );
            field("port", &s);
        }
        for (k, v) in &self.labels {
            field("label", k);
            field("=", v);
        }
        field("restart", self.restart.as_str());
        for (name, path) in &self.volumes {
            field("volume", name);
            field("at", path);
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_hash_changes_with_every_created_field_and_not_with_run_state() {
        let base = ContainerSpec::new("web", "img:1");
        let h = base.spec_hash();
        let mut stopped = base.clone();
        stopped.running = false;
        assert_eq!(stopped.spec_hash(), h, "run state is not re-creation");
        type Edit = Box<dyn Fn(&mut ContainerSpec)>;
        let variants: Vec<Edit> = vec![
            Box::new(|s| s.image = "img:2".into()),
            Box::new(|s| s.command = Some(vec![])),
            Box::new(|s| s.command = Some(vec!["a".into()])),
            Box::new(|s| {
                s.env.insert("A".into(), "1".into());
            }),
            Box::new(|s| {
                s.labels.insert("a".into(), "".into());
            }),
            Box::new(|s| s.restart = Restart::Always),
            Box::new(|s| {
                s.volumes.insert("data".into(), "/data".into());
            }),
            Box::new(|s| {
                s.ports.push(PortMapping {
                    container_port: 80,
                    protocol: "tcp".into(),
                    host_port: 8080,
                    host_ip: None,
                })
            }),
        ];
        let mut seen = std::collections::BTreeSet::from([h]);
        for v in &variants {
            let mut s = base.clone();
            v(&mut s);
            assert!(seen.insert(s.spec_hash()), "{s:?} hashed like another");
        }
        // Length prefixes: moving a byte between two fields changes the hash.
        let mut a = base.clone();
        a.env.insert("AB".into(), "C".into());
        let mut b = base.clone();
        b.env.insert("A".into(), "BC".into());
        assert_ne!(a.spec_hash(), b.spec_hash());
    }

    #[test]
    fn declarations_docker_or_castellan_would_refuse_are_refused() {
        let ok = ContainerSpec::new("web-1.a_b", "img");
        assert_eq!(ok.validate(), Ok(()));
        for bad in ["", "-web", "a/b", "a b", "../x", &"x".repeat(129)] {
            let s = ContainerSpec::new(bad, "img");
            assert!(matches!(s.validate(), Err(SpecError::Name(_))), "{bad:?}");
        }
        let mut s = ContainerSpec::new("web", "img");
        s.labels.insert("io.castellan.owner".into(), "x".into());
        assert!(matches!(s.validate(), Err(SpecError::ReservedLabel(_))));
        let mut s = ContainerSpec::new("web", "img");
        s.env.insert("A=B".into(), "x".into());
        assert!(matches!(s.validate(), Err(SpecError::EnvName(..))));
        assert!(matches!(
            ContainerSpec::new("web", " ").validate(),
            Err(SpecError::NoImage(_))
        ));
    }

    #[test]
    fn environment_values_never_reach_a_serialised_plan() {
        let mut s = ContainerSpec::new("db", "postgres:16");
        s.env
            .insert("POSTGRES_PASSWORD".into(), "hunter2-secret".into());
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("POSTGRES_PASSWORD"), "{json}");
        assert!(!json.contains("hunter2-secret"), "{json}");
    }
}
