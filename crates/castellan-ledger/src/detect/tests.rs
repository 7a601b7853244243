#![allow(clippy::unwrap_used)]

use super::*;

fn kind(name: &str, text: &str) -> Option<ConfigKind> {
    classify(name, text).map(|d| d.kind)
}

#[test]
fn compose_short_and_long_volumes() {
    let text = "services:\n  a:\n    image: x\n    volumes:\n      - data:/data\n      - ./conf:/etc/conf:ro\n";
    let d = classify("c.yml", text).unwrap();
    assert_eq!(d.kind, ConfigKind::DockerCompose);
    assert!(!d.write_capable);
    let rw = "services:\n  a:\n    image: x\n    volumes:\n      - type: bind\n        source: /srv\n        target: /srv\n";
    assert!(classify("c.yml", rw).unwrap().write_capable);
    let ro = "services:\n  a:\n    image: x\n    volumes:\n      - type: bind\n        source: /srv\n        target: /srv\n        read_only: true\n";
    assert!(!classify("c.yml", ro).unwrap().write_capable);
    let sock = "services:\n  a:\n    image: x\n    volumes: ['/var/run/docker.sock:/var/run/docker.sock:ro']\n";
    assert!(classify("c.yml", sock).unwrap().write_capable);
    let root = "services:\n  a:\n    image: x\n    user: \"0:0\"\n";
    assert!(classify("c.yml", root).unwrap().write_capable);
}

#[test]
fn compose_merge_keys_and_extensions() {
    let text = "x-base: &base\n  image: busybox\n  privileged: true\nservices:\n  a:\n    <<: *base\n  b:\n    image: y\n";
    let d = classify("c.yml", text).unwrap();
    assert_eq!(d.service_scope, "a,b");
    assert_eq!(d.label, "compose: a, b");
    assert!(d.write_capable);
}

#[test]
fn not_compose() {
    // services as a list (GitLab CI), unknown top-level keys (a workflow), no service keys.
    assert_eq!(kind("x.yml", "services:\n  - postgres\n  - redis\n"), None);
    assert_eq!(
        kind(
            "x.yml",
            "on: push\njobs:\n  t:\n    services:\n      pg:\n        image: postgres\n"
        ),
        None
    );
    assert_eq!(
        kind(
            "x.yml",
            "stages: [a]\nservices:\n  pg:\n    image: postgres\n"
        ),
        None
    );
    assert_eq!(kind("x.yml", "services:\n  pg:\n    colour: blue\n"), None);
    assert_eq!(kind("x.yml", "services:\n  pg:\n    image: [\n"), None);
}

#[test]
fn alias_bomb_is_refused_quickly() {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='z' {
        text.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        prev = c;
    }
    text.push_str("services:\n  s:\n    image: x\n");
    assert!(yaml::load(&text).is_none());
    assert_eq!(classify("c.yml", &text), None);
    assert_eq!(raw_payload(&text), None);
}

#[test]
fn deep_nesting_is_refused() {
    let text = "- ".repeat(10_000) + "x\n";
    assert!(yaml::load(&text).is_none());
    let flow = "[".repeat(300) + &"]".repeat(300);
    assert!(yaml::load(&flow).is_none());
    let toml = format!(
        "[repair_bot.{}]\ncheck = 1\naction = 2\n",
        "a.".repeat(5000)
    );
    assert_eq!(classify("r.toml", &toml), None);
}

#[test]
fn systemd_kinds_and_names() {
    let timer = "[Unit]\nDescription=Nightly backup\n\n[Timer]\nOnCalendar=daily\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n";
    let d = classify("systemd/backup.timer", timer).unwrap();
    assert_eq!(d.kind, ConfigKind::SystemdTimer);
    assert_eq!(d.service_scope, "backup.service,backup.timer");
    assert!(d.write_capable);

    let dropin = "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd://\n";
    let d = classify("docker.service.d/override.conf", dropin).unwrap();
    assert_eq!(d.kind, ConfigKind::SystemdService);
    assert_eq!(d.service_scope, "docker.service");
    assert_eq!(d.label, "docker.service.d/override.conf");
    assert!(d.write_capable);

    let sandboxed = "[Service]\nExecStart=/usr/bin/exporter\nProtectSystem=strict\n";
    assert!(!classify("e.service", sandboxed).unwrap().write_capable);
    let as_user = "[Service]\nUser=app\nExecStart=/usr/bin/app\n";
    assert!(!classify("a.service", as_user).unwrap().write_capable);
    let as_user_rm =
        "[Service]\nUser=app\nExecStartPre=-/bin/rm -f /run/app.pid\nExecStart=/usr/bin/app\n";
    assert!(classify("a.service", as_user_rm).unwrap().write_capable);
    let socket = "[Socket]\nListenStream=8080\n[Install]\nWantedBy=sockets.target\n";
    let d = classify("app.socket", socket).unwrap();
    assert_eq!(d.kind, ConfigKind::SystemdSocket);
    assert_eq!(d.service_scope, "app.service,app.socket");
    assert!(!d.write_capable);
    let mount = "[Mount]\nWhat=/dev/sdb1\nWhere=/data\n";
    assert_eq!(kind("data.mount", mount), Some(ConfigKind::SystemdUnit));
}

#[test]
fn not_systemd() {
    assert_eq!(
        kind(
            "README.md",
            "# Units\n\nEdit the [Service] section:\n\n[Service]\nUser=x\n"
        ),
        None
    );
    assert_eq!(kind("x.ini", "[Service]\ncolour=blue\n"), None);
    assert_eq!(
        kind("x.network", "[Match]\nName=eth0\n[Network]\nDHCP=yes\n"),
        None
    );
    assert_eq!(kind(".env", "A=1\nB=2\n"), None);
}

#[test]
fn playbooks_and_task_lists() {
    let play = "- name: Web\n  hosts: web, edge\n  become: true\n  roles:\n    - nginx\n    - role: common\n  tasks:\n    - ansible.builtin.service:\n        name: nginx\n        state: started\n";
    let c = classify_full("site.yml", play).unwrap();
    assert_eq!(c.detected.kind, ConfigKind::AnsiblePlaybook);
    assert_eq!(c.detected.host_hint.as_deref(), Some("edge,web"));
    assert_eq!(c.detected.service_scope, "common,nginx");
    assert_eq!(c.role_refs.len(), 2);
    let tasks = "- name: install\n  apt:\n    name: nginx\n- service: name=nginx state=started\n";
    assert_eq!(classify("main.yml", tasks), None);
    let services = task_file_services(tasks).unwrap();
    assert_eq!(services.into_iter().collect::<Vec<_>>(), ["nginx"]);
    assert_eq!(task_file_services("- 1\n- 2\n"), None);
    assert_eq!(task_file_services("[]\n"), None);
}

#[test]
fn repair_bots_in_three_syntaxes() {
    let yaml = "repair_bot:\n  name: heal\n  rules:\n    - check: {http: 'http://x'}\n      action: {restart: grafana}\n";
    let d = classify("r.yaml", yaml).unwrap();
    assert_eq!(d.kind, ConfigKind::RepairBotConfig);
    assert_eq!(d.label, "repair bot: heal");
    let json = r#"{"remediation": {"rules": [{"probe": "tcp:80", "action": "restart", "service": "web"}]}}"#;
    let d = classify("r.json", json).unwrap();
    assert_eq!(d.service_scope, "web");
    let toml = "[autoheal]\nhosts = [\"h1\"]\n[[autoheal.rules]]\ncheck = \"disk\"\naction = \"prune\"\nunit = \"docker.service\"\n";
    let d = classify("r.toml", toml).unwrap();
    assert_eq!(d.host_hint.as_deref(), Some("h1"));
    assert_eq!(d.service_scope, "docker.service");
    // A key without rules is not a repair bot.
    assert_eq!(kind("r.yaml", "repair_bot:\n  enabled: false\n"), None);
}

#[test]
fn raw_payload_positives() {
    let cases = [
        (
            "services:\n  web:\n    image: nginx\n    ports:\n      - 80:80\n",
            "raw_compose",
        ),
        (
            "image: nginx:1.25\nports:\n  - 80:80\nrestart: always\n",
            "raw_compose",
        ),
        (
            "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/x\n",
            "raw_systemd_unit",
        ),
        (
            "Here it is:\n```ini\n[Service]\nUser=root\nExecStart=/bin/x\n```\n",
            "raw_systemd_unit",
        ),
        (
            "Port 22\nPermitRootLogin no\nPasswordAuthentication no\n",
            "raw_host_config:sshd_config",
        ),
        (
            "UUID=abcd / ext4 defaults 0 1\n/dev/sdb1 /data xfs defaults 0 2\n",
            "raw_host_config:fstab",
        ),
        (
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
            "raw_host_config:iptables",
        ),
        (
            "DB_HOST=db\nDB_USER=app\nexport DB_PORT=5432\n",
            "raw_host_config:env",
        ),
        (
            "127.0.0.1 localhost\n10.0.0.2 web1 web1.lan\n10.0.0.3 db1\n",
            "raw_host_config:hosts",
        ),
        (
            "Defaults env_reset\n%sudo ALL=(ALL:ALL) ALL\ndeploy ALL=(root) NOPASSWD: /usr/bin/systemctl\n",
            "raw_host_config:sudoers",
        ),
        (
            "table inet filter {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    tcp dport 22 accept\n  }\n}\n",
            "raw_host_config:nftables",
        ),
        (
            "0 3 * * * root /usr/local/bin/backup\n*/5 * * * * /usr/bin/check\n",
            "raw_host_config:crontab",
        ),
        (
            "server {\n  listen 443 ssl;\n  server_name example.org;\n  location / {\n    proxy_pass http://app;\n  }\n}\n",
            "raw_host_config:nginx",
        ),
        (
            "<VirtualHost *:80>\nServerName example.org\nDocumentRoot /var/www\n</VirtualHost>\n",
            "raw_host_config:apache",
        ),
        (
            "- name: restart\n  ansible.builtin.systemd:\n    name: nginx\n    state: restarted\n",
            "raw_host_config:ansible_tasks",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
            "raw_host_config:kubernetes_manifest",
        ),
        (
            "[mysqld]\nbind-address = 0.0.0.0\nport = 3306\n",
            "raw_host_config:ini",
        ),
    ];
    for (text, label) in cases {
        assert_eq!(raw_payload(text), Some(label), "{text}");
    }
}

#[test]
fn raw_payload_negatives() {
    for text in [
        "",
        "docker-compose.yml@3f2a1bc",
        "See the [Service] section of backup.service; User= is set there.",
        "https://git.example.org/ops/compose/blob/3f2a1bc/docker-compose.yml",
        "[\"docker-compose.yml@3f2a1bc\", \"ticket:OPS-1234\", \"sha256:9f86d08\"]",
        "[\n  \"docker-compose.yml@3f2a1bc\",\n  \"ticket:OPS-1234\",\n  \"sha256:9f86d08\"\n]",
        "We restart the services during the Saturday window.\nThe rollback owner is the platform team.\nPost-check: dashboards green.",
        "Port 22 is open to the bastion only.\nProtocol changes go through review.\nMatch rules are unchanged.",
        "owner: platform-team\ndecision: approve\nwindow: sat 02:00-04:00\n",
        "- ticket: OPS-1\n- commit: 3f2a1bc\n- artifact: build-42\n",
    ] {
        assert_eq!(raw_payload(text), None, "{text}");
    }
}

#[test]
fn lines_and_prose_never_panic() {
    for text in [
        "\u{feff}",
        "\\",
        "[",
        "]",
        "=",
        "---\n...\n---",
        "&a *a",
        "? : -",
        "\t\t:\n",
        "- &x\n- *x\n- *y",
    ] {
        let _ = classify("x", text);
        let _ = raw_payload(text);
    }
}
