//! Async Proxmox VE API client: token auth, TLS pinning, tasks, typed errors, retries.
