//! (worktree stub of the contract; replaced on merge)
#![allow(missing_docs)]
use crate::model::*;
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("x")]
    X,
}
#[derive(Debug)]
pub struct Scan {
    pub surfaces: Vec<Surface>,
    pub scanned_file_count: u64,
    pub skipped_file_count: u64,
}
pub fn scan_repo(_root: &std::path::Path) -> Result<Scan, InventoryError> {
    Err(InventoryError::X)
}
pub fn report(scan: Scan, generated_at: &str, git_commit: &str) -> InventoryReport {
    InventoryReport {
        schema_version: crate::schema::INVENTORY_SCHEMA.into(),
        generated_at: generated_at.into(),
        git_commit: git_commit.into(),
        status: INVENTORY_STATUS.into(),
        summary: InventorySummary {
            scanned_file_count: scan.scanned_file_count,
            surface_count: 0,
            config_kind_counts: Default::default(),
            write_capable_surface_count: 0,
            live_evidence_required_count: 0,
        },
        surfaces: scan.surfaces,
    }
}
pub fn git_short_sha(_root: &std::path::Path) -> String {
    "unknown".into()
}
