//! (worktree stub of the contract; replaced on merge)
pub fn raw_payload(text: &str) -> Option<&'static str> {
    if text.contains("services:") && text.lines().count() > 2 {
        Some("raw_compose")
    } else if text.contains("[Service]") && text.lines().count() > 2 {
        Some("raw_systemd_unit")
    } else {
        None
    }
}
