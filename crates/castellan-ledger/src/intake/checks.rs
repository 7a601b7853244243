//! The owner-response checks: one method per seed check, each a verdict with its reason and what a supplement still lacks.

use super::*;

pub(super) struct Ctx<'a> {
    pub(super) obj: &'a serde_json::Map<String, Value>,
    pub(super) request: &'a RequestDraft,
    pub(super) surface_id: &'a str,
    pub(super) raw_payloads: &'a [Located],
    pub(super) findings: &'a [RedactedFinding],
    pub(super) execution: &'a [Located],
    pub(super) incidents: &'a [Located],
    pub(super) reviewers_needed: u32,
}

pub(super) fn need(supplement: &mut Vec<String>, field: &str, problem: &str) {
    supplement.push(format!("{field}: {problem}"));
}

pub(super) fn check(id: &str, result: Verdict, reason: impl Into<String>) -> CheckResult {
    CheckResult {
        check_id: id.to_owned(),
        result,
        reason: reason.into(),
    }
}

impl Ctx<'_> {
    pub(super) fn field(&self, name: &str) -> Option<&Value> {
        self.obj.get(name).filter(|v| present(v))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    pub(super) fn located_in(&self, items: &[Located], field: &str) -> bool {
        let prefix = format!("$.{field}");
        items.iter().any(|l| {
            l.location == prefix
                || l.location.starts_with(&format!("{prefix}."))
                || l.location.starts_with(&format!("{prefix}["))
                || l.location.starts_with(&format!("{prefix}{{"))
        })
    }

    /// The checks, the supplement list, and whether incident evidence is missing.
    pub(super) fn checks(&self) -> (Vec<CheckResult>, Vec<String>, bool) {
        use Verdict::{Fail, NotApplicable as Na, Pass};
        let mut supplement: Vec<String> = Vec::new();
        let mut out = Vec::with_capacity(21);

        // owner_identity_present
        if self.has("owner_role_or_team") {
            out.push(check(
                "owner_identity_present",
                Pass,
                "owner_role_or_team is given",
            ));
        } else {
            need(&mut supplement, "owner_role_or_team", "missing");
            out.push(check(
                "owner_identity_present",
                Fail,
                "owner_role_or_team is missing",
            ));
        }

        // decision_reason_present
        let absent: Vec<&str> = ["decision", "decision_reason"]
            .into_iter()
            .filter(|f| !self.has(f))
            .collect();
        for f in &absent {
            need(&mut supplement, f, "missing");
        }
        out.push(if absent.is_empty() {
            check(
                "decision_reason_present",
                Pass,
                "decision and decision_reason are given",
            )
        } else {
            check(
                "decision_reason_present",
                Fail,
                format!("missing: {}", absent.join(", ")),
            )
        });

        // affected_scope_matches_surface
        let mut scope_problems = Vec::new();
        if self.surface_id != self.request.surface_id {
            scope_problems.push(format!(
                "surface_id does not match the request's surface {}",
                self.request.surface_id
            ));
        }
        if let Some(Value::String(sha)) = self.obj.get("repo_sha256")
            && !sha.eq_ignore_ascii_case(&self.request.repo_sha256)
        {
            scope_problems.push(format!(
                "repo_sha256 answers another version of the surface; the committed one is {}",
                self.request.repo_sha256
            ));
        }
        match self.field("affected_scope") {
            None => scope_problems.push("affected_scope is missing".into()),
            Some(v) => {
                let text = render_text(v);
                if !text.contains(&self.request.surface_id)
                    && !text.contains(&self.request.repo_source_path)
                {
                    scope_problems.push(format!(
                        "affected_scope does not name the surface ({})",
                        self.request.surface_id
                    ));
                }
            }
        }
        for p in &scope_problems {
            supplement.push(p.clone());
        }
        out.push(if scope_problems.is_empty() {
            check(
                "affected_scope_matches_surface",
                Pass,
                "affected_scope names the committed surface",
            )
        } else {
            check(
                "affected_scope_matches_surface",
                Fail,
                scope_problems.join("; "),
            )
        });

        // redacted_refs_only
        let refs_check = if let Some(raw) = self.raw_payloads.first() {
            check(
                "redacted_refs_only",
                Fail,
                format!(
                    "raw configuration ({}) pasted at {}",
                    raw.label, raw.location
                ),
            )
        } else {
            match self
                .obj
                .get("redacted_evidence_refs")
                .filter(|v| present(v))
            {
                None => {
                    supplement.push("redacted_evidence_refs: missing".into());
                    check(
                        "redacted_refs_only",
                        Fail,
                        "redacted_evidence_refs is missing",
                    )
                }
                Some(v) => {
                    let bad: Vec<String> = ref_items(v)
                        .into_iter()
                        .filter(|(_, item)| !item.is_some_and(is_reference_list))
                        .map(|(loc, _)| loc)
                        .collect();
                    if bad.is_empty() {
                        check(
                            "redacted_refs_only",
                            Pass,
                            "every evidence item is a reference",
                        )
                    } else {
                        for loc in &bad {
                            supplement.push(format!(
                                "redacted_evidence_refs{loc}: not a reference (a hash, ticket, commit or artifact pointer)"
                            ));
                        }
                        check(
                            "redacted_refs_only",
                            Fail,
                            format!(
                                "not references: redacted_evidence_refs{}",
                                bad.join(", redacted_evidence_refs")
                            ),
                        )
                    }
                }
            }
        };
        out.push(refs_check);

        out.push(secret_check(self.findings));

        // live_config_hash_metadata_only
        let live_needed = self.request.requires_live_evidence;
        out.push(
            if self.located_in(self.raw_payloads, "live_config_hash_ref") {
                check(
                    "live_config_hash_metadata_only",
                    Fail,
                    "live_config_hash_ref holds raw configuration, not a hash reference",
                )
            } else {
                match self.field("live_config_hash_ref") {
                    None if live_needed => {
                        need(
                            &mut supplement,
                            "live_config_hash_ref",
                            "missing (this surface requires live evidence)",
                        );
                        check(
                            "live_config_hash_metadata_only",
                            Fail,
                            "live_config_hash_ref is missing",
                        )
                    }
                    None => check(
                        "live_config_hash_metadata_only",
                        Na,
                        "this surface does not require live evidence",
                    ),
                    Some(v) if is_reference_value(v) => check(
                        "live_config_hash_metadata_only",
                        Pass,
                        "live_config_hash_ref is a reference",
                    ),
                    Some(_) => {
                        need(
                            &mut supplement,
                            "live_config_hash_ref",
                            "not a hash reference (e.g. sha256:<64 hex>)",
                        );
                        check(
                            "live_config_hash_metadata_only",
                            Fail,
                            "live_config_hash_ref is prose, not a hash reference",
                        )
                    }
                }
            },
        );

        // maintenance_window_present
        out.push(self.presence(
            "maintenance_window_present",
            "maintenance_window",
            &mut supplement,
        ));

        // restart_window_separate_from_action
        out.push(if self.located_in(self.execution, "restart_window") {
            check(
                "restart_window_separate_from_action",
                Fail,
                "restart_window contains an action to run, not only a window",
            )
        } else if self.has("restart_window") {
            check(
                "restart_window_separate_from_action",
                Pass,
                "restart_window is a window only",
            )
        } else {
            supplement.push("restart_window: missing".into());
            check(
                "restart_window_separate_from_action",
                Fail,
                "restart_window is missing",
            )
        });

        out.push(self.presence("rollback_owner_present", "rollback_owner", &mut supplement));

        // post_check_plan_present
        out.push(match self.field("post_check_plan") {
            None => {
                supplement.push("post_check_plan: missing".into());
                check(
                    "post_check_plan_present",
                    Fail,
                    "post_check_plan is missing",
                )
            }
            Some(v) => {
                let text = render_text(v).to_lowercase();
                let mut lacks = Vec::new();
                if !text.contains("health") {
                    lacks.push("a service health check");
                }
                if !["rollback", "roll back", "stop", "abort", "revert"]
                    .iter()
                    .any(|w| text.contains(w))
                {
                    lacks.push("the rollback/stop condition");
                }
                if lacks.is_empty() {
                    check(
                        "post_check_plan_present",
                        Pass,
                        "post_check_plan names health checks and a stop condition",
                    )
                } else {
                    let msg = format!("does not name {}", lacks.join(" or "));
                    supplement.push(format!("post_check_plan: {msg}"));
                    check(
                        "post_check_plan_present",
                        Fail,
                        format!("post_check_plan {msg}"),
                    )
                }
            }
        });

        out.push(self.presence("disable_switch_present", "disable_switch", &mut supplement));

        for (id, field) in [
            (
                "config_source_of_truth_present",
                "config_source_of_truth_ref",
            ),
            (
                "service_dependency_map_present",
                "service_dependency_map_ref",
            ),
            (
                "port_binding_inventory_present",
                "port_binding_inventory_ref",
            ),
            ("cold_start_sequence_present", "cold_start_sequence_ref"),
        ] {
            out.push(self.reference(id, field, &mut supplement));
        }

        // incident_recovery_evidence_present
        let incident = !self.incidents.is_empty();
        let mut incident_missing = false;
        out.push(if !incident {
            if self.has("incident_recovery_evidence_ref") {
                self.reference(
                    "incident_recovery_evidence_present",
                    "incident_recovery_evidence_ref",
                    &mut supplement,
                )
            } else {
                check(
                    "incident_recovery_evidence_present",
                    Na,
                    "the response reports no incident, restart or port problem",
                )
            }
        } else {
            let signals: BTreeSet<&str> = self.incidents.iter().map(|l| l.label.as_str()).collect();
            let signals = signals.into_iter().collect::<Vec<_>>().join(", ");
            let absent: Vec<&str> = INCIDENT_OWNER_RESPONSE_FIELDS
                .iter()
                .copied()
                .filter(|f| !self.field(f).is_some_and(is_reference_value))
                .collect();
            if absent.is_empty() {
                check(
                    "incident_recovery_evidence_present",
                    Pass,
                    format!("incident content ({signals}) comes with every incident-recovery reference"),
                )
            } else {
                incident_missing = true;
                for f in &absent {
                    if *f == "incident_recovery_evidence_ref" {
                        supplement.push(format!(
                            "incident_recovery_evidence_ref: required because the response reports {signals}"
                        ));
                    }
                }
                check(
                    "incident_recovery_evidence_present",
                    Fail,
                    format!("incident content ({signals}) without: {}", absent.join(", ")),
                )
            }
        });

        out.push(self.reference(
            "daemon_runner_contention_reviewed",
            "daemon_runner_contention_ref",
            &mut supplement,
        ));

        // silent_restart_not_accepted
        let restarts = self.incidents.iter().any(|l| l.label == "silent_restart");
        out.push(if !restarts {
            check("silent_restart_not_accepted", Na, "the response reports no restart or reload")
        } else {
            let absent: Vec<&str> = [
                "owner_role_or_team",
                "decision_reason",
                "service_dependency_map_ref",
                "port_binding_inventory_ref",
                "rollback_owner",
                "post_check_plan",
            ]
            .into_iter()
            .filter(|f| !self.has(f))
            .collect();
            if absent.is_empty() {
                check(
                    "silent_restart_not_accepted",
                    Pass,
                    "the restart comes with actor, reason, dependency map, port inventory, rollback and post-check",
                )
            } else {
                check(
                    "silent_restart_not_accepted",
                    Fail,
                    format!("a restart is reported without: {}", absent.join(", ")),
                )
            }
        });

        // write_capable_requires_extra_review
        out.push(if self.request.write_capable_surface {
            check(
                "write_capable_requires_extra_review",
                Pass,
                format!(
                    "write-capable surface: acceptance needs {} distinct reviewer signatures",
                    self.reviewers_needed
                ),
            )
        } else {
            check(
                "write_capable_requires_extra_review",
                Na,
                "the surface is not write-capable",
            )
        });

        // no_runtime_request
        out.push(if self.execution.is_empty() {
            check("no_runtime_request", Pass, "no execution request found")
        } else {
            let what: BTreeSet<String> = self
                .execution
                .iter()
                .map(|l| format!("{} at {}", l.label, l.location))
                .collect();
            check(
                "no_runtime_request",
                Fail,
                format!(
                    "execution requested: {}",
                    what.into_iter().collect::<Vec<_>>().join("; ")
                ),
            )
        });

        out.push(check(
            "counts_transition_safe",
            Pass,
            "an intake record never moves accepted or rejected counts; only signed reviewer records do, and none opens a runtime gate",
        ));

        // Missing fields not covered by a check (followup_owner).
        if !self.has("followup_owner") {
            supplement.push("followup_owner: missing".into());
        }
        supplement.sort();
        supplement.dedup();
        (out, supplement, incident_missing)
    }

    pub(super) fn presence(
        &self,
        id: &str,
        field: &str,
        supplement: &mut Vec<String>,
    ) -> CheckResult {
        if self.has(field) {
            check(id, Verdict::Pass, format!("{field} is given"))
        } else {
            supplement.push(format!("{field}: missing"));
            check(id, Verdict::Fail, format!("{field} is missing"))
        }
    }

    pub(super) fn reference(
        &self,
        id: &str,
        field: &str,
        supplement: &mut Vec<String>,
    ) -> CheckResult {
        match self.field(field) {
            None => {
                supplement.push(format!("{field}: missing"));
                check(id, Verdict::Fail, format!("{field} is missing"))
            }
            Some(v) if is_reference_value(v) => {
                check(id, Verdict::Pass, format!("{field} is a reference"))
            }
            Some(_) => {
                supplement.push(format!(
                    "{field}: a description, not a reference (give a URL, ticket, commit, hash or artifact pointer)"
                ));
                check(
                    id,
                    Verdict::Fail,
                    format!("{field} is a description, not a reference"),
                )
            }
        }
    }
}
