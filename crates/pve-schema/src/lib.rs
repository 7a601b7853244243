//! Proxmox VE API parameter schema (apidata format) and validator with PVE's own error texts.
