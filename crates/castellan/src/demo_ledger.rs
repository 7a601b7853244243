//! The demo's host-service step: a two-file ops repository goes through the owner-response
//! ledger (inventory, request drafts, intake of a clean and a leaking response, a reviewer
//! decision signed by an in-memory key, the acceptance report). Files in, files out: no
//! host is touched.

use std::path::Path;

use anyhow::Context as _;
use castellan_core::op::format_time;
use castellan_ledger::acceptance::{self, LedgerView, ReportInputs};
use castellan_ledger::intake::{self, IntakeRecord};
use castellan_ledger::review::{self, Decision, ReviewPayload, StoredReview};
use castellan_ledger::schema::RESPONSE_SCHEMA;
use castellan_ledger::store::Ledger;
use castellan_ledger::{inventory, requests};
use castellan_sig::SignerConfig;
use jiff::Timestamp;
use serde_json::json;

const COMPOSE: &str = "services:
  prometheus:
    image: prom/prometheus:v2.53.0
    ports:
      - \"9090:9090\"
    volumes:
      - ./prometheus.yml:/etc/prometheus/prometheus.yml
      - /srv/prometheus:/prometheus
  grafana:
    image: grafana/grafana:11.1.0
    ports:
      - \"3000:3000\"
";

const UNIT: &str = "[Unit]
Description=Prometheus node exporter
After=network-online.target

[Service]
User=node_exporter
ExecStart=/usr/local/bin/node_exporter
ProtectSystem=strict
Restart=on-failure

[Install]
WantedBy=multi-user.target
";

/// The candidate the demo's reviewer accepts (`ledger show` takes a surface id).
pub const SHOWN_CANDIDATE: &str = "systemd_service:systemd/node-exporter.service";

/// Runs the step in `dir`, printing as it goes. Each step is shown as the command that does
/// the same from the files it leaves in `dir` (the demo calls the library directly, and signs
/// the review with an in-memory key).
pub fn run(dir: &Path) -> anyhow::Result<()> {
    crate::outln!("== host services: the owner-response acceptance ledger ==\n")?;
    let repo = dir.join("ops");
    std::fs::create_dir_all(repo.join("hosts/pve-01/compose"))?;
    std::fs::create_dir_all(repo.join("systemd"))?;
    std::fs::write(repo.join("hosts/pve-01/compose/monitoring.yml"), COMPOSE)?;
    std::fs::write(repo.join("systemd/node-exporter.service"), UNIT)?;
    let ledger_dir = dir.join("ledger");
    std::fs::create_dir_all(&ledger_dir)?;
    let responses = dir.join("responses");
    std::fs::create_dir_all(&responses)?;

    let now = castellan_ledger::now_utc8();
    let inv = inventory::report(inventory::scan_repo(&repo)?, &now, "demo");
    let inventory_file = dir.join("inventory.json");
    std::fs::write(&inventory_file, castellan_ledger::to_pretty_json(&inv))?;
    crate::outln!(
        "  $ castellan ledger inventory --repo {} -o {}",
        repo.display(),
        inventory_file.display()
    )?;
    for s in &inv.surfaces {
        crate::outln!(
            "    {:<58} {}{}",
            s.surface_id,
            s.label,
            if s.write_capable_surface {
                "  (write-capable)"
            } else {
                ""
            }
        )?;
    }
    let reqs = requests::build(&inv, &now);
    let requests_file = ledger_dir.join(castellan_ledger::store::REQUESTS_FILE);
    std::fs::write(&requests_file, castellan_ledger::to_pretty_json(&reqs))?;
    crate::outln!(
        "  $ castellan ledger requests --inventory {} -o {}",
        inventory_file.display(),
        requests_file.display()
    )?;
    crate::outln!(
        "    {} owner request drafts, {} fields each (nothing is sent)",
        reqs.request_drafts.len(),
        reqs.request_drafts
            .first()
            .map_or(0, |d| d.owner_questions.len())
    )?;

    // The reviewer: a throwaway ed25519 key holding the `reviewer` role.
    let reviewer = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(
        &rand::random::<[u8; 32]>(),
    ));
    std::fs::write(
        ledger_dir.join("allowed_signers"),
        format!(
            "reviewer@demo namespaces=\"{}\" {}\n",
            review::NAMESPACE,
            reviewer.public_key().to_openssh()?
        ),
    )?;
    std::fs::write(
        ledger_dir.join("signers.toml"),
        "allowed_signers = \"allowed_signers\"\n[roles]\n\"reviewer@demo\" = \"reviewer\"\n",
    )?;
    let signers = SignerConfig::load(ledger_dir.join("signers.toml"))?;
    let mut ledger = Ledger::open(&ledger_dir)?;

    let mut answered = None;
    for d in &reqs.request_drafts {
        let mut response = json!({
            "schema_version": RESPONSE_SCHEMA,
            "request_id": d.request_id,
            "surface_id": d.surface_id,
            "repo_sha256": d.repo_sha256,
            "owner_role_or_team": "platform-observability",
            "decision": "keep",
            "decision_reason": "Matches the repository; reviewed in the last drift check.",
            "affected_scope": format!("{} on pve-01", d.surface_id),
            "redacted_evidence_refs": ["OPS-2291", format!("sha256:{}", d.repo_sha256)],
            "live_config_hash_ref": format!("sha256:{}", d.repo_sha256),
            "maintenance_window": "Tuesdays 01:00-03:00 UTC",
            "restart_window": "inside the maintenance window only",
            "rollback_owner": "observability on-call, runbook OPS-RB-17",
            "post_check_plan": "service health, scrape targets, logs; stop and roll back on failure",
            "disable_switch": "freeze rule OPS-2292",
            "followup_owner": "observability lead",
            "config_source_of_truth_ref": "repo=git:ops@3f2a1bc",
            "service_dependency_map_ref": "https://wiki.example.com/ops/deps",
            "port_binding_inventory_ref": "OPS-2293",
            "cold_start_sequence_ref": "https://wiki.example.com/ops/cold-start",
            "daemon_runner_contention_ref": "OPS-2294"
        });
        if d.write_capable_surface {
            // This owner pasted a deploy token into the notes (made up on the spot).
            let token: String = (0..36)
                .map(|_| {
                    let alphabet =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                    alphabet[rand::random_range(0..alphabet.len())] as char
                })
                .collect();
            response["notes"] = json!({"ci": {"env": [format!("DEPLOY_TOKEN=ghp_{token}")]}});
        }
        let bytes = serde_json::to_vec_pretty(&response)?;
        let file = responses.join(format!("{}.json", response_name(&d.surface_id)));
        std::fs::write(&file, &bytes)?;
        let record = intake::analyze(&bytes, &reqs, ledger.key(), 2)?;
        ledger.append_intake(&record, &format_time(Timestamp::now()))?;
        crate::outln!(
            "  $ castellan ledger intake {} --ledger {}",
            file.display(),
            ledger_dir.display()
        )?;
        crate::outln!("    lane: {}{}", record.lane, found(&record))?;
        if !record.findings.is_empty() {
            // What intake tells the operator to do with a leaking response.
            std::fs::remove_file(&file)?;
            crate::outln!(
                "    (the response leaked a secret: the demo deletes the file, as intake advises)"
            )?;
        }
        if record.lane == "ready_for_host_service_review" {
            answered = Some((d.clone(), record));
        }
    }

    if let Some((d, record)) = answered {
        let reason = "windows, rollback and post-check verified against OPS-2291";
        let payload = ReviewPayload {
            version: 1,
            candidate: record.candidate_id.clone(),
            response: record.response_id.clone(),
            surface_sha256: d.repo_sha256.clone(),
            decision: Decision::Accepted,
            reason: reason.into(),
            reviewed_at: format_time(Timestamp::now()),
            nonce: hex::encode(rand::random::<[u8; 16]>()),
        };
        let bytes = payload.render().into_bytes();
        let signature = reviewer
            .sign(review::NAMESPACE, ssh_key::HashAlg::Sha512, &bytes)
            .context("signing the review")?
            .to_pem(ssh_key::LineEnding::LF)
            .context("encoding the signature")?
            .into_bytes();
        let stored = StoredReview {
            payload: bytes,
            signature,
        };
        let verified = review::verify(&stored, &signers)?;
        ledger.append_review(
            &verified.payload,
            &verified.signer,
            &stored.signature,
            &format_time(Timestamp::now()),
        )?;
        crate::outln!(
            "  $ castellan ledger review {} --decision accepted --reason \"{reason}\" --key KEY --ledger {}",
            d.surface_id,
            ledger_dir.display()
        )?;
        crate::outln!(
            "    signed as reviewer@demo (namespace {}; here an in-memory key)",
            review::NAMESPACE
        )?;
    }

    let view = LedgerView::load(&ledger, Some(&signers))?;
    let report = acceptance::build_report(&ReportInputs {
        inventory: &inv,
        requests: &reqs,
        view: Some(&view),
        signers: Some(&signers),
        generated_at: &now,
        git_commit: "demo",
    });
    let report_file = dir.join("acceptance.json");
    std::fs::write(&report_file, castellan_ledger::to_pretty_json(&report))?;
    crate::outln!(
        "  $ castellan ledger acceptance --repo {} --inventory {} --requests {} --ledger {} -o {}",
        repo.display(),
        inventory_file.display(),
        requests_file.display(),
        ledger_dir.display(),
        report_file.display()
    )?;
    crate::outln!("    {}", acceptance::summary_line(&report))?;
    crate::outln!(
        "    (acceptance is not runtime approval: every *_authorized and runtime_gate stays false)"
    )?;
    Ok(())
}

/// A file name for a surface's response: its id with path separators replaced.
fn response_name(surface_id: &str) -> String {
    surface_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn found(record: &IntakeRecord) -> String {
    match record.findings.first() {
        Some(f) => format!(
            ": {} at {}, kept only as {}",
            f.rule_name, f.location, f.fingerprint
        ),
        None => String::new(),
    }
}
