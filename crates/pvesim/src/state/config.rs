//! Configuration: reading a guest's config and pending changes, and the LXC and QEMU update endpoints.

use super::*;

#[derive(Debug, Clone, Default)]
pub(super) struct Update {
    pub(super) params: BTreeMap<String, String>,
    pub(super) delete: Vec<String>,
    pub(super) revert: Vec<String>,
    pub(super) force: bool,
}

pub(super) fn apply_qemu_update(g: &mut Guest, u: &Update) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut params = u.params.clone();
    let mut delete = u.delete.clone();
    for opt in &u.revert {
        if let Some(v) = g.conf.main.get(opt) {
            params.insert(opt.clone(), v.clone());
        } else if g.conf.pending.contains_key(opt) {
            delete.push(opt.clone());
        }
    }
    for opt in &delete {
        if !g.conf.main.contains_key(opt) && !g.conf.pending.contains_key(opt) {
            warnings.push(format!(
                "cannot delete '{opt}' - not set in current configuration!"
            ));
            continue;
        }
        g.conf.pending.remove(opt);
        if opt == "tags" {
            g.conf.main.remove(opt);
        } else {
            g.conf.pending_delete.insert(opt.clone(), u.force);
        }
    }
    for (k, v) in &params {
        if g.conf.pending.get(k) == Some(v) {
            continue;
        }
        g.conf.pending.insert(k.clone(), v.clone());
        g.conf.pending_delete.remove(k);
    }
    g.cleanup_pending();
    if g.running {
        g.hotplug_pending();
    } else {
        g.apply_all_pending();
    }
    g.sync();
    warnings
}

pub(super) fn update_method(kind: GuestKind) -> (&'static str, &'static str) {
    match kind {
        GuestKind::Lxc => ("/nodes/{node}/lxc/{vmid}/config", "PUT"),
        GuestKind::Qemu => ("/nodes/{node}/qemu/{vmid}/config", "POST"),
    }
}

/// Config values as `check_type` leaves them when parsing: integers and booleans become
/// numbers in the JSON, everything else stays a string.
pub(super) fn typed_value(ty: Option<&str>, v: &str) -> Value {
    match ty {
        Some("integer") => v
            .trim_start_matches('+')
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(v)),
        Some("boolean") => match parse_boolean(v) {
            Some(b) => json!(u8::from(b)),
            None => json!(v),
        },
        Some("number") => v
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| json!(v)),
        _ => json!(v),
    }
}

impl State {
    pub fn get_config(&self, kind: GuestKind, vmid: u32, current: bool) -> ApiResult {
        let g = self.load(kind, vmid)?;
        // PVE::AbstractConfig::load_current_config: pending merged unless `current`.
        let mut conf = g.conf.main.clone();
        if !current {
            for (k, v) in &g.conf.pending {
                conf.insert(k.clone(), v.clone());
            }
            for k in g.conf.pending_delete.keys() {
                conf.remove(k);
            }
        }
        let mut obj = serde_json::Map::new();
        for (k, v) in &conf {
            obj.insert(k.clone(), self.value_json(kind, k, v));
        }
        obj.insert("digest".into(), json!(g.digest));
        Ok(Value::Object(obj).into())
    }

    pub fn get_pending(&self, kind: GuestKind, vmid: u32) -> ApiResult {
        let g = self.load(kind, vmid)?;
        // PVE::GuestHelpers::config_with_pending_array (digest included, as it is in $conf).
        let mut main = g.conf.main.clone();
        main.insert("digest".into(), g.digest.clone());
        let mut items: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in &main {
            let mut item = json!({"key": k, "value": self.value_json(kind, k, v)});
            if let Some(p) = g.conf.pending.get(k) {
                item["pending"] = self.value_json(kind, k, p);
            }
            if let Some(force) = g.conf.pending_delete.get(k) {
                item["delete"] = json!(if *force { 2 } else { 1 });
            }
            items.insert(k.clone(), item);
        }
        for (k, p) in &g.conf.pending {
            items
                .entry(k.clone())
                .or_insert_with(|| json!({"key": k, "pending": self.value_json(kind, k, p)}));
        }
        for (k, force) in &g.conf.pending_delete {
            items
                .entry(k.clone())
                .or_insert_with(|| json!({"key": k, "delete": if *force { 2 } else { 1 }}));
        }
        Ok(Value::Array(items.into_values().collect()).into())
    }

    pub(super) fn split_update(
        params: &BTreeMap<String, String>,
    ) -> (BTreeMap<String, String>, Update, Option<String>) {
        let mut rest = params.clone();
        for k in ["node", "vmid", "skiplock", "background_delay"] {
            rest.remove(k);
        }
        let digest = rest.remove("digest");
        let delete_str = rest.remove("delete");
        let revert_str = rest.remove("revert");
        let force = rest
            .remove("force")
            .is_some_and(|f| parse_boolean(&f) == Some(true));
        let update = Update {
            params: rest.clone(),
            delete: delete_str
                .as_deref()
                .map(split_list)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
            revert: revert_str
                .as_deref()
                .map(split_list)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
            force,
        };
        let any = delete_str.is_some() || revert_str.is_some() || !rest.is_empty();
        (
            if any { rest } else { BTreeMap::new() },
            update,
            digest.filter(|d| !d.is_empty()),
        )
    }

    pub(super) fn normalize_params(&self, kind: GuestKind, params: &mut BTreeMap<String, String>) {
        let (template, method) = update_method(kind);
        for (k, v) in params.iter_mut() {
            if k == "tags" {
                *v = pveconf::unique_tags(v);
            } else if self
                .schema
                .property(template, method, k)
                .and_then(|p| p.ty.as_deref())
                == Some("boolean")
                && let Some(b) = parse_boolean(v)
            {
                *v = if b { "1" } else { "0" }.to_string();
            }
        }
    }

    /// `PUT /nodes/{node}/lxc/{vmid}/config` (pve-container `update_vm`): synchronous.
    pub fn lxc_update(
        &mut self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
    ) -> ApiResult {
        let (_, mut update, digest) = Self::split_update(params);
        if update.delete.is_empty()
            && update.revert.is_empty()
            && update.params.is_empty()
            && !params.contains_key("delete")
            && !params.contains_key("revert")
        {
            return die("no options specified");
        }
        self.lock_config(ctx, GuestKind::Lxc, vmid)?;
        let g = self.load(GuestKind::Lxc, vmid)?;
        if let Some(lock) = g.lock() {
            return die(check_lock_msg(GuestKind::Lxc, lock));
        }
        // PVE::Tools::assert_if_modified
        if digest.as_deref().is_some_and(|d| d != g.digest) {
            return die("detected modified configuration - file changed by other user? Try again.");
        }
        self.normalize_params(GuestKind::Lxc, &mut update.params);
        let Some(g) = self.guests.get_mut(&vmid) else {
            return Ok(Value::Null.into());
        };
        for opt in &update.delete {
            g.conf.pending.remove(opt);
            g.conf.pending_delete.insert(opt.clone(), false);
        }
        for opt in &update.revert {
            g.conf.pending.remove(opt);
            g.conf.pending_delete.remove(opt);
        }
        for (k, v) in &update.params {
            g.conf.pending.insert(k.clone(), v.clone());
            g.conf.pending_delete.remove(k);
        }
        g.cleanup_pending();
        if g.running {
            g.hotplug_pending();
        } else {
            g.apply_all_pending();
        }
        g.sync();
        Ok(Value::Null.into())
    }

    /// `POST`/`PUT /nodes/{node}/qemu/{vmid}/config` (qemu-server `update_vm_api`).
    /// Checks run synchronously; the change itself runs in the `qmconfig` worker for POST.
    pub fn qemu_update(
        &mut self,
        ctx: &Ctx,
        vmid: u32,
        params: &BTreeMap<String, String>,
        sync: bool,
        now: Instant,
    ) -> ApiResult {
        let (_, mut update, digest) = Self::split_update(params);
        if update.delete.is_empty()
            && update.revert.is_empty()
            && update.params.is_empty()
            && !params.contains_key("delete")
            && !params.contains_key("revert")
        {
            return die("no options specified");
        }
        for opt in &update.delete {
            if update.params.contains_key(opt) {
                return Err(ApiError::Param(BTreeMap::from([(
                    "delete".to_string(),
                    format!("you can't use '-{opt}' and -delete {opt}' at the same time"),
                )])));
            }
        }
        self.lock_config(ctx, GuestKind::Qemu, vmid)?;
        let g = self.load(GuestKind::Qemu, vmid)?;
        // qemu-server uses its own text here, not PVE::Tools::assert_if_modified's.
        if digest.as_deref().is_some_and(|d| d != g.digest) {
            return die("checksum missmatch (file change by other user?)");
        }
        let skiplock = params
            .get("skiplock")
            .is_some_and(|v| parse_boolean(v) == Some(true));
        if let (Some(lock), false) = (g.lock(), skiplock) {
            return die(check_lock_msg(GuestKind::Qemu, lock));
        }
        self.normalize_params(GuestKind::Qemu, &mut update.params);
        if sync {
            if let Some(g) = self.guests.get_mut(&vmid) {
                // Warnings of a synchronous call only reach the daemon's log.
                let _ = apply_qemu_update(g, &update);
            }
            return Ok(Value::Null.into());
        }
        let mut paramarr: Vec<String> = Vec::new();
        if !update.delete.is_empty() {
            paramarr.push(format!("-delete {}", update.delete.join(",")));
        }
        for (k, v) in &update.params {
            paramarr.push(format!("-{k} '{v}'"));
        }
        let log = vec![format!("update VM {vmid}: {}", paramarr.join(" "))];
        // Deleting an option that is not set only warns (`warn "cannot delete ..."`), which
        // makes the worker end with "WARNINGS: n".
        let warnings = update
            .delete
            .iter()
            .filter(|o| !g.conf.main.contains_key(*o) && !g.conf.pending.contains_key(*o))
            .count() as u32;
        let outcome = if warnings > 0 {
            Outcome::Warnings(warnings)
        } else {
            Outcome::Ok
        };
        let upid = self.new_task(
            ctx,
            "qmconfig",
            vmid,
            outcome,
            Effect::QemuUpdate { vmid, update },
            log,
            now,
        );
        Ok(json!(upid).into())
    }
}
