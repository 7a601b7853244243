//! Tasks: their records, their lazy completion and effects, and the task list, status and log endpoints.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    Ok,
    Warnings(u32),
    Error(String),
}

#[derive(Debug, Clone)]
pub(super) enum Effect {
    None,
    Start(u32),
    Stop(u32),
    Reboot(u32),
    QemuUpdate {
        vmid: u32,
        update: Update,
    },
    /// State changes of the lifecycle workers (create, restore, clone, destroy, vzdump, ...).
    Ops(Vec<Op>),
}

/// One state change a worker makes.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Writes a guest's whole config (creating the guest if needed).
    PutGuest {
        vmid: u32,
        kind: GuestKind,
        conf: BTreeMap<String, String>,
        running: bool,
    },
    RemoveGuest(u32),
    /// `remove_lock`: only if the guest still carries this lock.
    RemoveLock {
        vmid: u32,
        lock: String,
    },
    SetConfig {
        vmid: u32,
        key: String,
        value: String,
    },
    AddVolume {
        volid: String,
        volume: Box<Volume>,
    },
    RemoveVolume {
        volid: String,
    },
    /// `vdisk_create_base`: a volume renamed to its base name.
    RenameVolume {
        from: String,
        to: String,
    },
    SetVolumeSize {
        volid: String,
        size: u64,
    },
    SetHa {
        vmid: u32,
        managed: bool,
    },
}

/// What a new task is: type, ID, how it ends and what it changes.
#[derive(Debug, Clone)]
pub(super) struct TaskSpec {
    pub(super) ty: String,
    pub(super) id: String,
    pub(super) outcome: Outcome,
    pub(super) effect: Effect,
    /// Applied instead of `effect` when the task fails (locks released, half-made guests
    /// removed, as the worker's error paths do).
    pub(super) cleanup: Vec<Op>,
    pub(super) log: Vec<String>,
    /// The task runs `factor` × `task_duration`.
    pub(super) factor: u32,
}

impl TaskSpec {
    pub(super) fn new(ty: &str, id: impl Into<String>, outcome: Outcome) -> TaskSpec {
        TaskSpec {
            ty: ty.to_string(),
            id: id.into(),
            outcome,
            effect: Effect::None,
            cleanup: Vec::new(),
            log: Vec::new(),
            factor: 1,
        }
    }

    pub(super) fn effect(mut self, ops: Vec<Op>) -> TaskSpec {
        self.effect = Effect::Ops(ops);
        self
    }

    pub(super) fn cleanup(mut self, ops: Vec<Op>) -> TaskSpec {
        self.cleanup = ops;
        self
    }

    pub(super) fn log(mut self, log: Vec<String>) -> TaskSpec {
        self.log = log;
        self
    }
}

#[derive(Debug, Clone)]
pub(super) struct Task {
    pub(super) upid: String,
    pub(super) pid: u32,
    pub(super) pstart: u64,
    pub(super) starttime: u64,
    pub(super) ty: String,
    pub(super) id: String,
    pub(super) user: String,
    pub(super) log: Vec<String>,
    pub(super) outcome: Outcome,
    pub(super) effect: Effect,
    pub(super) cleanup: Vec<Op>,
    /// Set when the task has ended.
    pub(super) exitstatus: Option<String>,
    pub(super) endtime: Option<u64>,
}

/// `PVE::Tools::upid_decode`.
pub(super) fn decode_upid(upid: &str) -> Result<Value, ApiError> {
    let bad = || die::<Value>(format!("unable to parse worker upid '{upid}'"));
    let parts: Vec<&str> = upid.split(':').collect();
    if parts.len() != 9 || parts[0] != "UPID" || !parts[8].is_empty() {
        return bad();
    }
    let hex = |s: &str, min: usize, max: usize| {
        (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    let (Some(pid), Some(pstart), Some(starttime)) = (
        hex(parts[2], 8, 8),
        hex(parts[3], 8, 9),
        hex(parts[4], 8, 8),
    ) else {
        return bad();
    };
    if parts[1].is_empty() || parts[5].is_empty() || parts[7].is_empty() {
        return bad();
    }
    Ok(json!({
        "upid": upid, "node": parts[1], "pid": pid, "pstart": pstart, "starttime": starttime,
        "type": parts[5], "id": parts[6], "user": parts[7],
    }))
}

impl State {
    /// Ends every task whose time is up, applying its effect (the worker's state change).
    pub fn tick(&mut self, now: Instant) {
        while let Some(Reverse((end, _))) = self.due.peek() {
            if *end > now {
                break;
            }
            let Some(Reverse((_, upid))) = self.due.pop() else {
                break;
            };
            self.finish_task(&upid);
        }
    }

    pub(super) fn finish_task(&mut self, upid: &str) {
        let Some(task) = self.tasks.get(upid) else {
            return;
        };
        if task.exitstatus.is_some() {
            return;
        }
        let outcome = task.outcome.clone();
        let effect = task.effect.clone();
        let cleanup = task.cleanup.clone();
        let mut log_extra = Vec::new();
        if matches!(outcome, Outcome::Error(_)) {
            self.apply_ops(cleanup);
        } else {
            log_extra = self.apply_effect(effect);
        }
        let endtime = epoch(SystemTime::now());
        let Some(task) = self.tasks.get_mut(upid) else {
            return;
        };
        task.log.extend(log_extra);
        // PVE::Tools::upid_read_status: "OK", "WARNINGS: N", or the error text.
        let status = match &outcome {
            Outcome::Ok => {
                task.log.push("TASK OK".into());
                "OK".to_string()
            }
            Outcome::Warnings(n) => {
                task.log.push(format!("TASK WARNINGS: {n}"));
                format!("WARNINGS: {n}")
            }
            Outcome::Error(e) => {
                task.log.push(format!("TASK ERROR: {e}"));
                e.clone()
            }
        };
        task.exitstatus = Some(status);
        task.endtime = Some(endtime);
    }

    pub(super) fn apply_effect(&mut self, effect: Effect) -> Vec<String> {
        let now = SystemTime::now();
        match effect {
            Effect::None => {}
            Effect::Start(vmid) => {
                let pid = self.alloc_pid();
                if let Some(g) = self.guests.get_mut(&vmid) {
                    // Pending changes are applied when the guest starts.
                    g.apply_all_pending();
                    g.sync();
                    g.running = true;
                    g.started = Some(now);
                    g.pid = pid;
                }
            }
            Effect::Stop(vmid) => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.running = false;
                    g.started = None;
                }
            }
            Effect::Reboot(vmid) => {
                let pid = self.alloc_pid();
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.apply_all_pending();
                    g.sync();
                    g.running = true;
                    g.started = Some(now);
                    g.pid = pid;
                }
            }
            Effect::Ops(ops) => self.apply_ops(ops),
            Effect::QemuUpdate { vmid, update } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    return apply_qemu_update(g, &update);
                }
            }
        }
        Vec::new()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_task(
        &mut self,
        ctx: &Ctx,
        ty: &str,
        vmid: u32,
        outcome: Outcome,
        effect: Effect,
        log: Vec<String>,
        now: Instant,
    ) -> String {
        let mut spec = TaskSpec::new(ty, vmid.to_string(), outcome).log(log);
        spec.effect = effect;
        self.spawn(ctx, spec, now)
    }

    /// Starts a task; it ends after `factor` × `task_duration` (see [`State::tick`]).
    pub(super) fn spawn(&mut self, ctx: &Ctx, spec: TaskSpec, now: Instant) -> String {
        let TaskSpec {
            ty,
            id,
            mut outcome,
            mut effect,
            cleanup,
            mut log,
            factor,
        } = spec;
        match &ctx.task_fault {
            Some(Fault::TaskFailure { exitstatus }) => {
                outcome = Outcome::Error(exitstatus.clone());
                effect = Effect::None;
            }
            Some(Fault::TaskWarnings { count }) if outcome == Outcome::Ok => {
                for i in 1..=*count {
                    log.push(format!("WARN: simulated warning {i}"));
                }
                outcome = Outcome::Warnings(*count);
            }
            _ => {}
        }
        let pid = self.alloc_pid();
        let wall = SystemTime::now();
        let starttime = epoch(wall);
        let pstart = wall
            .duration_since(self.boot)
            .map(|d| d.as_millis() as u64 / 10)
            .unwrap_or(0);
        let user = if ctx.user.is_empty() {
            "root@pam".to_string()
        } else {
            ctx.user.clone()
        };
        let upid = format!(
            "UPID:{}:{pid:08X}:{pstart:08X}:{starttime:08X}:{ty}:{id}:{user}:",
            self.node
        );
        let end = now + self.task_duration * factor.max(1);
        self.tasks.insert(
            upid.clone(),
            Task {
                upid: upid.clone(),
                pid,
                pstart,
                starttime,
                ty,
                id,
                user,
                log,
                outcome,
                effect,
                cleanup,
                exitstatus: None,
                endtime: None,
            },
        );
        self.task_order.push(upid.clone());
        self.due.push(Reverse((end, upid.clone())));
        if self.task_duration.is_zero() {
            self.tick(now);
        }
        upid
    }

    /// Ends a task now (its heap entry is skipped later).
    pub(super) fn finish_now(&mut self, upid: &str) {
        self.finish_task(upid);
    }

    pub(super) fn apply_ops(&mut self, ops: Vec<Op>) {
        for op in ops {
            self.apply_op(op);
        }
    }

    fn apply_op(&mut self, op: Op) {
        match op {
            Op::PutGuest {
                vmid,
                kind,
                conf,
                running,
            } => self.put_guest(vmid, kind, conf, running),
            Op::RemoveGuest(vmid) => {
                self.guests.remove(&vmid);
            }
            Op::RemoveLock { vmid, lock } => {
                if let Some(g) = self.guests.get_mut(&vmid)
                    && g.lock() == Some(lock.as_str())
                {
                    g.conf.main.remove("lock");
                    g.sync();
                }
            }
            Op::SetConfig { vmid, key, value } => {
                if let Some(g) = self.guests.get_mut(&vmid) {
                    g.conf.main.insert(key, value);
                    g.sync();
                }
            }
            Op::AddVolume { volid, volume } => self.add_volume(&volid, *volume),
            Op::RemoveVolume { volid } => {
                self.remove_volume(&volid);
            }
            Op::RenameVolume { from, to } => {
                if let Some(mut v) = self.remove_volume(&from) {
                    if let Some((_, name)) = storage::parse_volume_id(&to) {
                        v.volname = name.to_string();
                    }
                    self.add_volume(&to, v);
                }
            }
            Op::SetVolumeSize { volid, size } => {
                if let Some(v) = self.volume_mut(&volid) {
                    v.size = size;
                }
            }
            Op::SetHa { vmid, managed } => {
                if managed {
                    self.ha.insert(vmid);
                } else {
                    self.ha.remove(&vmid);
                }
            }
        }
    }

    /// Writes a guest's config, creating the guest if it does not exist.
    pub(super) fn put_guest(
        &mut self,
        vmid: u32,
        kind: GuestKind,
        conf: BTreeMap<String, String>,
        running: bool,
    ) {
        let pid = self.alloc_pid();
        let now = SystemTime::now();
        let g = self.guests.entry(vmid).or_insert_with(|| Guest {
            vmid,
            kind,
            running: false,
            conf: ParsedConf::default(),
            raw: String::new(),
            digest: String::new(),
            started: None,
            pid,
        });
        g.kind = kind;
        g.conf = ParsedConf {
            main: conf,
            ..Default::default()
        };
        if running && !g.running {
            g.running = true;
            g.started = Some(now);
            g.pid = pid;
        }
        g.sync();
    }

    pub(super) fn task_json(&self, t: &Task, with_endtime: bool) -> Value {
        let mut v = json!({
            "upid": t.upid,
            "node": self.node,
            "pid": t.pid,
            "pstart": t.pstart,
            "starttime": t.starttime,
            "type": t.ty,
            "id": t.id,
            "user": t.user,
        });
        if with_endtime {
            if let (Some(s), Some(e)) = (&t.exitstatus, t.endtime) {
                v["status"] = json!(s);
                v["endtime"] = json!(e);
            }
        } else {
            match &t.exitstatus {
                Some(s) => {
                    v["status"] = json!("stopped");
                    v["exitstatus"] = json!(s);
                }
                None => v["status"] = json!("running"),
            }
        }
        v
    }

    pub fn task_list(&self, params: &BTreeMap<String, String>) -> ApiResult {
        let num = |k: &str, d: usize| params.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let start = num("start", 0);
        let limit = num("limit", 50);
        let source = params
            .get("source")
            .map(String::as_str)
            .unwrap_or("archive");
        let vmid = params.get("vmid");
        let since: Option<u64> = params.get("since").and_then(|v| v.parse().ok());
        let until: Option<u64> = params.get("until").and_then(|v| v.parse().ok());
        let typefilter = params.get("typefilter");
        let userfilter = params.get("userfilter").map(|u| u.to_lowercase());
        let errors = params
            .get("errors")
            .is_some_and(|v| parse_boolean(v) == Some(true));
        let mut matched: Vec<Value> = Vec::new();
        for upid in self.task_order.iter().rev() {
            let Some(t) = self.tasks.get(upid) else {
                continue;
            };
            let finished = t.exitstatus.is_some();
            let src_ok = match source {
                "active" => !finished,
                "all" => true,
                _ => finished,
            };
            if !src_ok
                || vmid.is_some_and(|v| *v != t.id)
                || since.is_some_and(|s| t.starttime < s)
                || until.is_some_and(|u| t.starttime > u)
                || typefilter.is_some_and(|f| *f != t.ty)
                || userfilter
                    .as_ref()
                    .is_some_and(|u| !t.user.to_lowercase().contains(u.as_str()))
                || (errors && t.exitstatus.as_deref().is_none_or(|s| s == "OK"))
            {
                continue;
            }
            matched.push(self.task_json(t, true));
        }
        let total = matched.len();
        let page: Vec<Value> = matched.into_iter().skip(start).take(limit).collect();
        Ok(Reply {
            data: Value::Array(page),
            total: Some(total),
        })
    }

    pub fn task_status(&self, upid: &str) -> ApiResult {
        let decoded = decode_upid(upid)?;
        match self.tasks.get(upid) {
            Some(t) => Ok(self.task_json(t, false).into()),
            None => {
                // PVE::Tools::upid_read_status on a task without a log file.
                let mut v = decoded;
                v["status"] = json!("stopped");
                v["exitstatus"] = json!("unable to open file - No such file or directory");
                Ok(v.into())
            }
        }
    }

    pub fn task_log(&self, upid: &str, params: &BTreeMap<String, String>) -> ApiResult {
        decode_upid(upid)?;
        let num = |k: &str, d: usize| params.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let start = num("start", 0);
        let limit = num("limit", 50);
        let Some(t) = self.tasks.get(upid) else {
            return die(format!(
                "unable to open file '/var/log/pve/tasks/{upid}' - No such file or directory"
            ));
        };
        let lines: Vec<Value> = t
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect();
        Ok(Reply {
            data: Value::Array(lines),
            total: Some(t.log.len()),
        })
    }
}
