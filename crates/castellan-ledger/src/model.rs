//! The documents the ledger reads and writes: inventory surfaces, owner request drafts.
//!
//! Every document is JSON with sorted keys and 2-space indentation (see
//! [`crate::to_pretty_json`]); readers refuse unknown fields so a typo or a document of
//! another kind is named, not silently ignored. (The acceptance report reads its inputs
//! more leniently, as the seed does: see [`crate::input`].)
//!
//! The request documents declare their fields in sorted order, so serde writes them
//! directly, draft by draft, in the same bytes as through a sorted `Value`
//! ([`crate::requests::write_report`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What kind of host-service configuration a surface is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigKind {
    /// A Docker Compose file (a `services` map of service definitions).
    DockerCompose,
    /// A systemd `.service` unit.
    SystemdService,
    /// A systemd `.timer` unit.
    SystemdTimer,
    /// A systemd `.socket` unit.
    SystemdSocket,
    /// Any other systemd unit (`.path`, `.mount`, `.target`, ...).
    SystemdUnit,
    /// An Ansible role (`roles/NAME/` with a task list).
    AnsibleRole,
    /// An Ansible playbook (a list of plays with `hosts`).
    AnsiblePlaybook,
    /// A repair-bot (auto-remediation) configuration.
    RepairBotConfig,
}

impl ConfigKind {
    /// The snake_case name used in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigKind::DockerCompose => "docker_compose",
            ConfigKind::SystemdService => "systemd_service",
            ConfigKind::SystemdTimer => "systemd_timer",
            ConfigKind::SystemdSocket => "systemd_socket",
            ConfigKind::SystemdUnit => "systemd_unit",
            ConfigKind::AnsibleRole => "ansible_role",
            ConfigKind::AnsiblePlaybook => "ansible_playbook",
            ConfigKind::RepairBotConfig => "repair_bot_config",
        }
    }

    /// The control tier a surface of this kind sits in.
    pub fn control_tier(self) -> ControlTier {
        match self {
            ConfigKind::DockerCompose
            | ConfigKind::SystemdService
            | ConfigKind::SystemdSocket
            | ConfigKind::SystemdUnit => ControlTier::ServiceRuntime,
            ConfigKind::SystemdTimer => ControlTier::ScheduledJob,
            ConfigKind::AnsibleRole | ConfigKind::AnsiblePlaybook => ControlTier::ConfigManagement,
            ConfigKind::RepairBotConfig => ControlTier::AutomatedRepair,
        }
    }
}

impl std::fmt::Display for ConfigKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a surface controls a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlTier {
    /// Defines a running service (compose services, systemd units).
    ServiceRuntime,
    /// Runs something on a schedule (systemd timers).
    ScheduledJob,
    /// Pushes configuration onto hosts (Ansible).
    ConfigManagement,
    /// Acts on hosts by itself when a check fails (repair bots).
    AutomatedRepair,
}

impl ControlTier {
    /// The snake_case name used in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlTier::ServiceRuntime => "service_runtime",
            ControlTier::ScheduledJob => "scheduled_job",
            ControlTier::ConfigManagement => "config_management",
            ControlTier::AutomatedRepair => "automated_repair",
        }
    }
}

/// One host-service surface found in the ops repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Surface {
    /// Stable id: `{config_kind}:{repo_source_path}`.
    pub surface_id: String,
    /// A human label (service names, unit description, role name).
    pub label: String,
    /// The host or host group the surface is expected to run on, as far as the repo says.
    pub expected_host_scope: String,
    /// What kind of configuration it is.
    pub config_kind: ConfigKind,
    /// The services it defines or touches, comma-separated, sorted.
    pub service_scope: String,
    /// How it controls a host.
    pub control_tier: ControlTier,
    /// Path relative to the repo root, `/`-separated (a directory for an Ansible role).
    pub repo_source_path: String,
    /// SHA-256 (hex) of the file; for a directory, of its sorted `path\0sha256\n` listing.
    pub repo_sha256: String,
    /// Lines in the source (all files, for a directory).
    pub source_line_count: u64,
    /// Whether applying it can change host state beyond its own service.
    pub write_capable_surface: bool,
    /// Whether the owner must supply live evidence (a live config hash ref).
    pub requires_live_evidence: bool,
}

impl Surface {
    /// The owner request id for this surface.
    pub fn request_id(&self) -> String {
        format!("host_service_owner_request:{}", self.surface_id)
    }
}

/// `host_service_config_inventory_v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryReport {
    /// [`crate::schema::INVENTORY_SCHEMA`].
    pub schema_version: String,
    /// When it was made (RFC 3339, UTC+8 unless given).
    pub generated_at: String,
    /// The repo's short commit, or `unknown`.
    pub git_commit: String,
    /// `repo_only_inventory_ready_no_live_read`.
    pub status: String,
    /// Counts.
    pub summary: InventorySummary,
    /// Every surface, sorted by `repo_source_path` then `surface_id`.
    pub surfaces: Vec<Surface>,
}

/// The inventory's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySummary {
    /// Files looked at.
    pub scanned_file_count: u64,
    /// Surfaces found.
    pub surface_count: u64,
    /// Surfaces per config kind.
    pub config_kind_counts: BTreeMap<ConfigKind, u64>,
    /// Surfaces with `write_capable_surface`.
    pub write_capable_surface_count: u64,
    /// Surfaces with `requires_live_evidence`.
    pub live_evidence_required_count: u64,
}

/// The inventory's `status`: made from the repo alone; no host was read.
pub const INVENTORY_STATUS: &str = "repo_only_inventory_ready_no_live_read";
/// The request report's `status`: drafts only; nothing was sent.
pub const REQUEST_STATUS: &str = "owner_request_drafts_ready_not_sent";

/// What the owner is asked, per required field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerQuestion {
    /// The response field.
    pub field: String,
    /// The question.
    pub question: String,
}

/// One owner request draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDraft {
    /// [`Surface::config_kind`].
    pub config_kind: ConfigKind,
    /// [`Surface::control_tier`].
    pub control_tier: ControlTier,
    /// [`Surface::expected_host_scope`].
    pub expected_host_scope: String,
    /// [`Surface::label`].
    pub label: String,
    /// One question per required field (the incident fields included).
    pub owner_questions: Vec<OwnerQuestion>,
    /// [`Surface::repo_sha256`].
    pub repo_sha256: String,
    /// [`Surface::repo_source_path`].
    pub repo_source_path: String,
    /// `host_service_owner_request:{surface_id}`.
    pub request_id: String,
    /// The fields the owner's response must fill.
    pub required_owner_fields: Vec<String>,
    /// [`Surface::requires_live_evidence`].
    pub requires_live_evidence: bool,
    /// [`Surface::service_scope`].
    pub service_scope: String,
    /// [`Surface::source_line_count`].
    pub source_line_count: u64,
    /// [`Surface::surface_id`].
    pub surface_id: String,
    /// [`Surface::write_capable_surface`].
    pub write_capable_surface: bool,
}

/// `host_service_owner_request_draft_v1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestReport {
    /// When it was made.
    pub generated_at: String,
    /// One draft per surface, in inventory order.
    pub request_drafts: Vec<RequestDraft>,
    /// [`crate::schema::REQUEST_SCHEMA`].
    pub schema_version: String,
    /// The inventory's commit.
    pub source_inventory_git_commit: String,
    /// The inventory's schema version.
    pub source_inventory_schema_version: String,
    /// The inventory's status.
    pub source_inventory_status: String,
    /// [`REQUEST_STATUS`].
    pub status: String,
    /// Counts.
    pub summary: RequestSummary,
}

/// The request report's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSummary {
    /// Drafts that require live evidence.
    pub live_evidence_required_count: u64,
    /// Drafts.
    pub request_draft_count: u64,
    /// Fields each request asks for.
    pub required_owner_field_count: u64,
    /// Drafts for write-capable surfaces.
    pub write_capable_request_count: u64,
}

impl RequestDraft {
    /// The surface this draft asks about.
    pub fn surface(&self) -> Surface {
        Surface {
            surface_id: self.surface_id.clone(),
            label: self.label.clone(),
            expected_host_scope: self.expected_host_scope.clone(),
            config_kind: self.config_kind,
            service_scope: self.service_scope.clone(),
            control_tier: self.control_tier,
            repo_source_path: self.repo_source_path.clone(),
            repo_sha256: self.repo_sha256.clone(),
            source_line_count: self.source_line_count,
            write_capable_surface: self.write_capable_surface,
            requires_live_evidence: self.requires_live_evidence,
        }
    }
}
