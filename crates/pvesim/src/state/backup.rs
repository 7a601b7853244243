//! `POST /nodes/{node}/vzdump` (pve-manager `PVE/API2/VZDump.pm`, `PVE/VZDump.pm`): a
//! `vzdump` task (ID: the VMID when there is exactly one guest) that holds `lock: backup` on
//! each guest while it runs and leaves a `vzdump-KIND-VMID-YYYY_MM_DD-HH_MM_SS.EXT` archive.
//! A guest that fails is logged and the task ends with `job errors`.

use super::*;

/// A vzdump task runs this many times `task_duration`.
pub const VZDUMP_DURATION_FACTOR: u32 = 2;

/// An archive is this fraction of the guest's disks (`1/N`): uncompressed, compressed.
const ARCHIVE_DIVISOR_RAW: u64 = 4;
const ARCHIVE_DIVISOR_COMPRESSED: u64 = 8;

/// `PVE::VZDump::compressor_info`'s file extension.
fn compress_ext(compress: Option<&str>) -> &'static str {
    match compress {
        Some("1" | "lzo") => "lzo",
        Some("gzip") => "gz",
        Some("zstd") => "zst",
        _ => "",
    }
}

/// `$verify_notes_template`.
fn verify_notes_template(t: &str) -> Result<(), String> {
    if t.contains('\n') {
        return Err("contains a line feed\n".into());
    }
    let mut problems = Vec::new();
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            if !matches!(chars[i + 1], 'n' | '\\') {
                problems.push(format!("escape sequence '\\{}' at char {i}", chars[i + 1]));
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    let mut rest = t;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let var = &after[..end];
        let is_var =
            !var.is_empty() && !var.contains(|c: char| c.is_whitespace() || c == '{' || c == '}');
        if is_var && !matches!(var, "cluster" | "guestname" | "node" | "vmid") {
            problems.push(format!("variable '{var}' at char {}", offset + start + 2));
        }
        offset += start + 2 + end + 2;
        rest = &after[end + 2..];
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("found unknown: {}\n", problems.join(", ")))
    }
}

/// `$generate_notes`.
fn generate_notes(t: &str, vmid: u32, guestname: &str, node: &str) -> String {
    let unescaped = t.replace("\\n", "\n").replace("\\\\", "\\");
    unescaped
        .replace("{{cluster}}", "standalone node")
        .replace("{{guestname}}", guestname)
        .replace("{{node}}", node)
        .replace("{{vmid}}", &vmid.to_string())
}

/// One guest's backup: the ops on success, or the error it fails with.
type GuestResult = Result<(String, Volume), String>;

impl State {
    /// The guests a vzdump call covers (`get_included_guests`), sorted.
    fn vzdump_guests(&self, p: &Params) -> Vec<u32> {
        let mut ids: Vec<u32> = if p.flag("all") || p.get("exclude").is_some() {
            let exclude: Vec<u32> = p
                .get("exclude")
                .map(split_list)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| v.parse().ok())
                .collect();
            self.guest_ids()
                .into_iter()
                .filter(|id| !exclude.contains(id))
                .collect()
        } else {
            p.get("vmid")
                .map(split_list)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| v.parse().ok())
                .collect()
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// `POST /nodes/{node}/vzdump`.
    pub fn vzdump(
        &mut self,
        ctx: &Ctx,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> ApiResult {
        let p = Params(params);
        for opt in ["all", "exclude", "pool"] {
            let given = if opt == "all" {
                p.flag(opt)
            } else {
                p.get(opt).is_some()
            };
            if given && p.get("vmid").is_some() {
                return Err(param_err(opt, "option conflicts with option 'vmid'"));
            }
        }
        if let Some(t) = p.get("notes-template").filter(|t| !t.is_empty()) {
            verify_notes_template(t).map_err(|e| param_err("notes-template", e))?;
        }
        let all = p.flag("all") || p.get("exclude").is_some();
        if !(all || p.flag("stop") || p.get("pool").is_some()) && p.get("vmid").is_none() {
            return Err(param_err("vmid", "property is missing"));
        }
        let ids = self.vzdump_guests(&p);
        if ids.is_empty() && !all {
            // "silent exit if specified VMs run on other nodes" (no pools here).
            return Ok(json!("OK").into());
        }
        let storage = p.get("storage").unwrap_or("local").to_string();
        let id = if ids.len() == 1 {
            ids[0].to_string()
        } else {
            String::new()
        };
        let mut log = vec![format!(
            "INFO: starting new backup job: {}",
            command_line(params)
        )];
        let spec = match self.vzdump_storage_error(&storage) {
            Some(lines) => {
                let last = lines.last().cloned().unwrap_or_default();
                log.extend(lines.into_iter().map(|l| format!("ERROR: {l}")));
                TaskSpec::new("vzdump", id, Outcome::Error(last))
            }
            None => self.vzdump_spec(&p, &ids, &storage, id, &mut log),
        };
        let mut spec = spec.log(log);
        spec.factor = VZDUMP_DURATION_FACTOR;
        let upid = self.spawn(ctx, spec, now);
        Ok(json!(upid).into())
    }

    /// `PVE::VZDump->new`'s storage checks (`storage_info`).
    fn vzdump_storage_error(&self, storage: &str) -> Option<Vec<String>> {
        match self.storages.get(storage) {
            None => Some(vec![
                format!(
                    "could not activate storage '{storage}': storage '{storage}' does not exist"
                ),
                format!(
                    "could not get storage information for '{storage}': storage '{storage}' does not exist"
                ),
            ]),
            Some(st) if !st.has_content("backup") => Some(vec![format!(
                "could not get storage information for '{storage}': can't use storage '{storage}' for backups - wrong content type"
            )]),
            Some(_) => None,
        }
    }

    /// Backs up each guest (`exec_backup_task`): locks now, archives and unlocks at the end.
    fn vzdump_spec(
        &mut self,
        p: &Params,
        ids: &[u32],
        storage: &str,
        id: String,
        log: &mut Vec<String>,
    ) -> TaskSpec {
        let time = epoch(SystemTime::now());
        let mut ops = Vec::new();
        let mut cleanup = Vec::new();
        let mut plan_used = 0u64;
        let mut errors = 0;
        for &vmid in ids {
            let kind = self.guests.get(&vmid).map(|g| g.kind);
            log.push(format!(
                "INFO: Starting Backup of VM {vmid} ({})",
                kind.map_or("unknown", GuestKind::as_str)
            ));
            match self.backup_guest(p, vmid, storage, time, &mut plan_used) {
                Ok((volid, vol)) => {
                    let kind = kind.unwrap_or(GuestKind::Lxc);
                    let unlock = Op::RemoveLock {
                        vmid,
                        lock: "backup".into(),
                    };
                    log.push(format!(
                        "INFO: backup mode: {}",
                        p.get("mode").unwrap_or("snapshot")
                    ));
                    log.push(format!(
                        "INFO: creating vzdump archive '{}'",
                        self.storages[storage].path_of(&vol.volname)
                    ));
                    log.push(format!("INFO: Finished Backup of VM {vmid} (00:00:01)"));
                    self.set_backup_lock(vmid, kind);
                    ops.push(Op::AddVolume {
                        volid,
                        volume: Box::new(vol),
                    });
                    ops.push(unlock.clone());
                    cleanup.push(unlock);
                }
                Err(e) => {
                    errors += 1;
                    log.push(format!("ERROR: Backup of VM {vmid} failed - {e}"));
                }
            }
        }
        let outcome = if errors > 0 {
            log.push("INFO: Backup job finished with errors".into());
            Outcome::Error("job errors".into())
        } else {
            log.push("INFO: Backup job finished successfully".into());
            Outcome::Ok
        };
        // Per-guest results are already decided: on a job error the good archives stay.
        let mut spec = TaskSpec::new("vzdump", id, outcome).cleanup(cleanup.clone());
        if errors > 0 {
            spec.cleanup = ops;
        } else {
            spec = spec.effect(ops);
        }
        spec
    }

    fn set_backup_lock(&mut self, vmid: u32, _kind: GuestKind) {
        if let Some(g) = self.guests.get_mut(&vmid) {
            g.conf.main.insert("lock".into(), "backup".into());
            g.sync();
        }
    }

    /// One guest's archive, or why it fails.
    fn backup_guest(
        &self,
        p: &Params,
        vmid: u32,
        storage: &str,
        time: u64,
        plan_used: &mut u64,
    ) -> GuestResult {
        let Some(g) = self.guests.get(&vmid) else {
            return Err(format!("unable to find VM '{vmid}'"));
        };
        if p.get("mode") == Some("stop") && self.ha.contains(&vmid) && g.running {
            return Err("Cannot execute a backup with stop mode on a HA managed and enabled Service. Use snapshot mode or disable the Service.".into());
        }
        // lock_vm: set_lock($vmid, 'backup') checks the lock first.
        if let Some(lock) = g.lock() {
            return Err(check_lock_msg(g.kind, lock));
        }
        let st = &self.storages[storage];
        let ext = compress_ext(p.get("compress"));
        let name = format!("backup/{}", seed::vzdump_name(g.kind, vmid, time, ext));
        let disks: u64 = config_volumes(g.kind, &g.conf.main)
            .into_iter()
            .filter(|(k, s)| !is_indexed(k, &["unused"]) && s.opt("backup") != Some("0"))
            .filter_map(|(_, s)| s.size())
            .sum();
        let divisor = if ext.is_empty() {
            ARCHIVE_DIVISOR_RAW
        } else {
            ARCHIVE_DIVISOR_COMPRESSED
        };
        let size = (disks / divisor).max(1 << 20);
        if st.used() + *plan_used + size > st.total {
            return Err(format!(
                "vzdump archive '{}': write error - No space left on device",
                st.path_of(&name)
            ));
        }
        *plan_used += size;
        let guestname = match g.kind {
            GuestKind::Lxc => g.conf.main.get("hostname").cloned(),
            GuestKind::Qemu => g.conf.main.get("name").cloned(),
        }
        .unwrap_or_else(|| format!("VM {vmid}"));
        let notes = p
            .get("notes-template")
            .filter(|t| !t.is_empty())
            .map(|t| generate_notes(t, vmid, &guestname, &self.node));
        let format = storage::backup_format(&name)
            .map(|(f, _)| f)
            .unwrap_or_default();
        let vol = Volume {
            volname: name.clone(),
            vtype: VType::Backup,
            format,
            size,
            vmid: Some(vmid),
            ctime: time,
            notes,
            protected: p.flag("protected"),
            parent: None,
            backup: Some(BackupInfo {
                kind: g.kind,
                config: g.conf.main.clone(),
            }),
        };
        Ok((st.volid(&name), vol))
    }
}

/// `PVE::VZDump::Common::command_line`: `vzdump VMIDS --opt value ...`.
fn command_line(params: &BTreeMap<String, String>) -> String {
    let mut cmd = String::from("vzdump");
    if let Some(v) = params.get("vmid") {
        cmd.push(' ');
        cmd.push_str(&split_list(v).join(" "));
    }
    for (k, v) in params {
        if matches!(k.as_str(), "vmid" | "node") {
            continue;
        }
        cmd.push_str(&format!(" --{k} {v}"));
    }
    cmd
}
