use super::*;

#[test]
fn references_and_prose() {
    for s in [
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "3f2a1bc",
        "https://git.example.com/ops/infra/-/merge_requests/123",
        "OPS-1234",
        "s3://backups/compose/app.tar.zst",
        "repo=git:ops@3f2a1bc live: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "OPS-1, OPS-2; #42",
        "deploy/app.yml@3f2a1bc",
    ] {
        assert!(is_reference_list(s), "{s}");
    }
    for s in [
        "",
        "we keep it in git",
        "see the wiki",
        "the usual place",
        "OPS-1 and the wiki",
    ] {
        assert!(!is_reference_list(s), "{s}");
    }
}

#[test]
fn execution_requests_are_found_and_windows_are_not() {
    let cases: [(&str, &[&str]); 10] = [
        (
            "please run sudo systemctl restart nginx tonight",
            &["systemctl_restart", "sudo_action"],
        ),
        ("ssh root@web1.example.com and check", &["ssh_read"]),
        ("docker compose -f app.yml up -d", &["docker_compose_up"]),
        (
            "docker-compose pull && docker-compose up -d",
            &["docker_compose_up", "docker_compose_pull"],
        ),
        ("ansible-playbook -i prod site.yml", &["ansible_apply"]),
        (
            "trigger the repair-bot after merge",
            &["repair_bot_execute"],
        ),
        ("echo 'x' >> /etc/hosts", &["host_file_write"]),
        (
            "iptables -A INPUT -p tcp --dport 443 -j ACCEPT",
            &["firewall_change"],
        ),
        ("systemctl daemon-reload", &["systemctl_reload"]),
        (
            "can you just restart the stack",
            &["restart_without_window"],
        ),
    ];
    for (text, want) in cases {
        let got: BTreeSet<&str> = execution_requests(text)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        for w in want {
            assert!(got.contains(w), "{text}: {got:?}");
        }
    }
    for text in [
        "Sundays 02:00-03:00 UTC, restart window agreed with the web team",
        "curl -fsS https://app.example.com/healthz; systemctl is-active app; check logs",
        "restart only inside the maintenance window after reviewer approval",
        "rollback: revert commit 3f2a1bc via the merge request",
        "docker compose ps shows healthy",
        "the ssh host key fingerprint is recorded in OPS-12",
    ] {
        assert!(
            execution_requests(text).is_empty(),
            "{text}: {:?}",
            execution_requests(text)
        );
    }
}

#[test]
fn incident_signals_skip_negations() {
    assert_eq!(
        incident_signals("the service restarted itself twice at 03:00"),
        vec!["silent_restart"]
    );
    assert_eq!(
        incident_signals("port 8080 was taken by the exporter"),
        vec!["port_incident"]
    );
    assert_eq!(
        incident_signals("after a power loss the stack needed a cold start"),
        vec!["cold_start"]
    );
    assert_eq!(
        incident_signals("last week's outage (INC-7)"),
        vec!["incident"]
    );
    assert!(incident_signals("no incident in the last 90 days").is_empty());
    assert!(incident_signals("it has never restarted silently").is_empty());
    assert!(incident_signals("routine change, config drift only").is_empty());
}

#[test]
fn placeholders_are_not_answers() {
    for s in ["", " ", "TBD", "n/a", "pending_owner_response", "-"] {
        assert!(!present(&Value::String(s.into())), "{s:?}");
    }
    assert!(present(&Value::String("platform-team".into())));
    assert!(!present(&serde_json::json!([null, ""])));
}
