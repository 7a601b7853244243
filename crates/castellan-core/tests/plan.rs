//! Planner tests: one table of cases, each a desired and an actual state and the plan
//! expected, rendered as text; and property tests that planning is idempotent.

use castellan_core::model::*;
use castellan_core::normalize::{Normalizers, TagOrder};
use castellan_core::plan::{Plan, plan};
use proptest::prelude::*;

fn lxc(vmid: Vmid) -> DesiredGuest {
    DesiredGuest::new(vmid, GuestKind::Lxc)
}
fn qemu(vmid: Vmid) -> DesiredGuest {
    DesiredGuest::new(vmid, GuestKind::Qemu)
}

/// An observed guest with a readable spec: 1 core, 512 MiB, no description or tags.
fn seen(vmid: Vmid, kind: GuestKind, run: ActualRun) -> ActualGuest {
    let mut g = ActualGuest::new(vmid, kind, run);
    g.spec = Some(ActualSpec {
        cores: Some(1),
        memory_mib: 512,
        description: None,
        tags: None,
        digest: format!("digest-{vmid}"),
        disks: Default::default(),
    });
    g
}

fn spec(g: &mut ActualGuest) -> &mut ActualSpec {
    g.spec.as_mut().expect("test guest has a spec")
}

/// Renders a plan as one line per action, candidate and notice.
fn render(p: &Plan) -> Vec<String> {
    let mut lines = Vec::new();
    for a in &p.actions {
        // The plain change, written as the node's parameters would be (sorted by key).
        let mut shown = a.params.clone();
        if !a.delete.is_empty() {
            shown.insert("delete".into(), a.delete.join(","));
        }
        if let Some(s) = a.shutdown {
            shown.insert("timeout".into(), s.timeout_secs.to_string());
            if s.force_stop {
                shown.insert("forceStop".into(), "1".into());
            }
        }
        if let Some(src) = &a.source {
            shown.insert("source".into(), src.describe());
        }
        let params: Vec<String> = shown.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let digest = a
            .digest
            .as_deref()
            .map(|d| format!(" @{d}"))
            .unwrap_or_default();
        lines.push(
            format!(
                "{} {} {}{digest}",
                a.vmid,
                a.kind.as_str(),
                params.join(" ")
            )
            .trim_end()
            .to_owned(),
        );
    }
    for c in &p.candidates {
        lines.push(format!("{} candidate {:?} {}", c.vmid, c.kind, c.guest));
    }
    for n in &p.notices {
        lines.push(format!("notice {n}"));
    }
    for d in &p.destructive {
        let params: Vec<String> = d.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(
            format!(
                "{} {} {} {} @{} {}",
                d.target.id(),
                d.op,
                d.target.kind().as_str(),
                d.host,
                d.state_digest,
                params.join(" ")
            )
            .trim_end()
            .to_owned(),
        );
    }
    lines
}

fn absent(mut g: DesiredGuest, purge: bool) -> DesiredGuest {
    g.ensure = Ensure::Absent;
    g.purge = purge;
    g
}

#[test]
fn absent_guests_become_destructive_actions_never_benign_ones() {
    use ActualRun::*;
    let norm = Normalizers::default;
    // Present: a destroy bound to the digest it was planned against.
    check(
        vec![absent(lxc(101), false)],
        vec![seen(101, GuestKind::Lxc, Running)],
        norm(),
        &["101 destroy lxc pve-01 @digest-101"],
    );
    check(
        vec![absent(qemu(102), true)],
        vec![seen(102, GuestKind::Qemu, Stopped)],
        norm(),
        &["102 destroy qemu pve-01 @digest-102 purge=1"],
    );
    // Already gone: converged, and not a provisioning candidate.
    let d = DesiredState {
        node: "pve-01".into(),
        guests: [(103, absent(lxc(103), false))].into_iter().collect(),
        containers: Default::default(),
        wipes: Default::default(),
        decommission: None,
    };
    let p = plan(&d, &ActualState::default(), &norm());
    assert!(p.converged() && p.candidates.is_empty(), "{p:?}");
    // Unreadable config: nothing to bind an approval to.
    let mut blind = seen(104, GuestKind::Lxc, Running);
    blind.spec = None;
    check(
        vec![absent(lxc(104), false)],
        vec![blind],
        norm(),
        &["notice 104: configuration unreadable, not written"],
    );
    // Locked or of the other kind: reported, not proposed.
    let mut locked = seen(105, GuestKind::Lxc, Running);
    locked.lock = Some("backup".into());
    check(
        vec![absent(lxc(105), false)],
        vec![locked],
        norm(),
        &["notice 105: locked (backup); waiting"],
    );
    let p = plan(
        &DesiredState {
            node: "pve-01".into(),
            guests: [(106, absent(lxc(106), false))].into_iter().collect(),
            containers: Default::default(),
            wipes: Default::default(),
            decommission: None,
        },
        &ActualState {
            guests: [(106, seen(106, GuestKind::Qemu, Running))]
                .into_iter()
                .collect(),
            ..Default::default()
        },
        &norm(),
    );
    assert!(p.destructive.is_empty() && p.notices.len() == 1, "{p:?}");
    // A pending destroy is not convergence.
    let p = plan(
        &DesiredState {
            node: "pve-01".into(),
            guests: [(101, absent(lxc(101), false))].into_iter().collect(),
            containers: Default::default(),
            wipes: Default::default(),
            decommission: None,
        },
        &ActualState {
            guests: [(101, seen(101, GuestKind::Lxc, Running))]
                .into_iter()
                .collect(),
            ..Default::default()
        },
        &norm(),
    );
    assert!(!p.converged());
    assert!(p.actions.is_empty(), "a destroy is never a benign action");
}

fn check(desired: Vec<DesiredGuest>, actual: Vec<ActualGuest>, norm: Normalizers, want: &[&str]) {
    let d = DesiredState {
        node: "pve-01".into(),
        guests: desired.into_iter().map(|g| (g.vmid, g)).collect(),
        containers: Default::default(),
        wipes: Default::default(),
        decommission: None,
    };
    let a = ActualState {
        guests: actual.into_iter().map(|g| (g.vmid, g)).collect(),
        ..Default::default()
    };
    let p = plan(&d, &a, &norm);
    assert_eq!(render(&p), want, "\nplan: {p:#?}");
    assert_eq!(plan(&d, &a, &norm), p, "plan is deterministic");
}

struct Case {
    name: &'static str,
    desired: Vec<DesiredGuest>,
    actual: Vec<ActualGuest>,
    norm: Normalizers,
    want: &'static [&'static str],
}

fn case(
    name: &'static str,
    desired: Vec<DesiredGuest>,
    actual: Vec<ActualGuest>,
    want: &'static [&'static str],
) -> Case {
    Case {
        name,
        desired,
        actual,
        norm: Normalizers::default(),
        want,
    }
}

#[test]
fn planner_rules() {
    use ActualRun::*;
    use GuestKind::*;
    let cases = vec![
        case("nothing declared, nothing present", vec![], vec![], &[]),
        case(
            "unmanaged fields produce nothing",
            vec![lxc(101)],
            vec![seen(101, Lxc, Running)],
            &[],
        ),
        case(
            "start a stopped guest",
            vec![DesiredGuest {
                run: DesiredRun::Running,
                ..lxc(101)
            }],
            vec![seen(101, Lxc, Stopped)],
            &["101 start"],
        ),
        case(
            "stop a running guest: a clean shutdown, never a hard stop by default",
            vec![DesiredGuest {
                run: DesiredRun::Stopped,
                ..qemu(200)
            }],
            vec![seen(200, Qemu, Running)],
            &["200 shutdown timeout=\"180\""],
        ),
        case(
            "a hard stop after the timeout only where the desired state allows it",
            vec![DesiredGuest {
                run: DesiredRun::Stopped,
                shutdown: ShutdownPolicy {
                    timeout_secs: 30,
                    force_stop: true,
                },
                ..lxc(101)
            }],
            vec![seen(101, Lxc, Running)],
            &["101 shutdown forceStop=\"1\" timeout=\"30\""],
        ),
        case(
            "unspecified run state is left alone",
            vec![DesiredGuest {
                run: DesiredRun::Unspecified,
                ..lxc(101)
            }],
            vec![seen(101, Lxc, Stopped)],
            &[],
        ),
        case(
            "one set_config with every field, conditional on the digest, before run state",
            vec![DesiredGuest {
                run: DesiredRun::Running,
                cores: Some(4),
                memory_bytes: Some(2 << 30),
                description: Some("web".into()),
                tags: Some(vec!["web".into(), "prod".into()]),
                ..lxc(101)
            }],
            vec![seen(101, Lxc, Stopped)],
            &[
                r#"101 set_config cores="4" description="web" memory="2048" tags="prod;web" @digest-101"#,
                "101 start",
            ],
        ),
        case(
            "memory canonicalised to MiB by floor: already converged",
            vec![DesiredGuest {
                memory_bytes: Some((512 << 20) + 12345),
                ..lxc(101)
            }],
            vec![seen(101, Lxc, Running)],
            &[],
        ),
        case(
            "memory not MiB-aligned writes the floor",
            vec![DesiredGuest {
                memory_bytes: Some((1024 << 20) + 1),
                ..lxc(101)
            }],
            vec![seen(101, Lxc, Running)],
            &[r#"101 set_config memory="1024" @digest-101"#],
        ),
        case(
            "LXC description read back with a trailing newline is not drift",
            vec![DesiredGuest {
                description: Some("line one\nline two".into()),
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).description = Some("line one\nline two\n".into());
                g
            }],
            &[],
        ),
        case(
            "description changed",
            vec![DesiredGuest {
                description: Some("new".into()),
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).description = Some("old\n".into());
                g
            }],
            &[r#"101 set_config description="new" @digest-101"#],
        ),
        case(
            "empty description deletes it",
            vec![DesiredGuest {
                description: Some(String::new()),
                tags: Some(vec![]),
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).description = Some("old\n".into());
                spec(&mut g).tags = Some("a;b".into());
                g
            }],
            &[r#"101 set_config delete="description,tags" @digest-101"#],
        ),
        case(
            "tags compared as stored: order, case, duplicates and separators",
            vec![DesiredGuest {
                tags: Some(vec!["Web".into(), "db".into(), "web".into()]),
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).tags = Some("db;web".into());
                g
            }],
            &[],
        ),
        case(
            "tags drift writes the stored form",
            vec![DesiredGuest {
                tags: Some(vec!["z".into(), "a".into()]),
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).tags = Some("a".into());
                g
            }],
            &[r#"101 set_config tags="a;z" @digest-101"#],
        ),
        Case {
            name: "tag-style ordering=config keeps declared order",
            desired: vec![DesiredGuest {
                tags: Some(vec!["z".into(), "a".into()]),
                ..lxc(101)
            }],
            actual: vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).tags = Some("a;z".into());
                g
            }],
            norm: Normalizers {
                tag_order: TagOrder::Config,
                ..Normalizers::default()
            },
            want: &[r#"101 set_config tags="z;a" @digest-101"#],
        },
        case(
            "unknown spec: nothing written, power state still reconciled",
            vec![DesiredGuest {
                run: DesiredRun::Running,
                cores: Some(2),
                ..lxc(101)
            }],
            vec![ActualGuest::new(101, Lxc, Stopped)],
            &[
                "101 start",
                "notice 101: configuration unreadable, not written",
            ],
        ),
        case(
            "unknown spec without managed fields is silent",
            vec![lxc(101)],
            vec![ActualGuest::new(101, Lxc, Running)],
            &[],
        ),
        case(
            "LXC without cores (all host cores) differs from any number",
            vec![DesiredGuest {
                cores: Some(2),
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Running);
                spec(&mut g).cores = None;
                g
            }],
            &[r#"101 set_config cores="2" @digest-101"#],
        ),
        case(
            "sorted by vmid whatever the declaration order",
            vec![
                DesiredGuest {
                    run: DesiredRun::Running,
                    ..lxc(300)
                },
                DesiredGuest {
                    run: DesiredRun::Running,
                    cores: Some(2),
                    ..lxc(102)
                },
                DesiredGuest {
                    run: DesiredRun::Stopped,
                    ..qemu(101)
                },
            ],
            vec![
                seen(300, Lxc, Stopped),
                seen(101, Qemu, Running),
                seen(102, Lxc, Stopped),
            ],
            &[
                "101 shutdown timeout=\"180\"",
                r#"102 set_config cores="2" @digest-102"#,
                "102 start",
                "300 start",
            ],
        ),
        case(
            "provisioning and destroy candidates are reported, never planned",
            vec![
                DesiredGuest {
                    run: DesiredRun::Running,
                    ..lxc(101)
                },
                qemu(105),
            ],
            vec![seen(101, Lxc, Running), seen(102, Qemu, Running)],
            &[
                "102 candidate Destroy qemu",
                "105 candidate Provisioning qemu",
            ],
        ),
        case(
            "kind mismatch is not touched",
            vec![DesiredGuest {
                run: DesiredRun::Running,
                cores: Some(2),
                ..lxc(101)
            }],
            vec![seen(101, Qemu, Stopped)],
            &["notice 101: declared as lxc but the node has a qemu with that id; not touched"],
        ),
        case(
            "templates are not touched",
            vec![DesiredGuest {
                run: DesiredRun::Running,
                ..qemu(900)
            }],
            vec![{
                let mut g = seen(900, Qemu, Stopped);
                g.template = true;
                g
            }],
            &["notice 900: is a template; not touched"],
        ),
        case(
            "locked guests wait",
            vec![DesiredGuest {
                run: DesiredRun::Running,
                ..lxc(101)
            }],
            vec![{
                let mut g = seen(101, Lxc, Stopped);
                g.lock = Some("backup".into());
                g
            }],
            &["notice 101: locked (backup); waiting"],
        ),
        case(
            "a power state not understood is not changed",
            vec![DesiredGuest {
                run: DesiredRun::Stopped,
                ..qemu(200)
            }],
            vec![seen(200, Qemu, Other("paused".into()))],
            &[r#"notice 200: power state "paused" not understood; not changed"#],
        ),
        case(
            "pending restart reported under the manual policy",
            vec![DesiredGuest {
                cores: Some(1),
                ..qemu(200)
            }],
            vec![{
                let mut g = seen(200, Qemu, Running);
                g.pending_restart = vec!["cores".into()];
                g
            }],
            &["notice 200: needs a restart to apply pending cores (restart policy is manual)"],
        ),
        case(
            "pending restart rebooted under the reboot policy",
            vec![DesiredGuest {
                restart: RestartPolicy::Reboot,
                ..qemu(200)
            }],
            vec![{
                let mut g = seen(200, Qemu, Running);
                g.pending_restart = vec!["cores".into(), "memory".into()];
                g
            }],
            &["200 reboot"],
        ),
        case(
            "no reboot for a guest that is to be stopped",
            vec![DesiredGuest {
                run: DesiredRun::Stopped,
                restart: RestartPolicy::Reboot,
                ..qemu(200)
            }],
            vec![{
                let mut g = seen(200, Qemu, Running);
                g.pending_restart = vec!["memory".into()];
                g
            }],
            &["200 shutdown timeout=\"180\""],
        ),
    ];
    let n = cases.len();
    for c in cases {
        eprintln!("case: {}", c.name);
        check(c.desired, c.actual, c.norm, c.want);
    }
    assert!(n >= 25, "every rule has a case");
}

#[test]
fn plan_json_shape() {
    let d = DesiredState {
        node: "pve-01".into(),
        containers: Default::default(),
        wipes: Default::default(),
        decommission: None,
        guests: [(
            101,
            DesiredGuest {
                cores: Some(2),
                ..lxc(101)
            },
        )]
        .into(),
    };
    let a = ActualState {
        guests: [(101, seen(101, GuestKind::Lxc, ActualRun::Running))].into(),
        ..Default::default()
    };
    let json = serde_json::to_value(plan(&d, &a, &Normalizers::default())).expect("serialises");
    assert_eq!(
        json,
        serde_json::json!({
            "actions": [{
                "vmid": 101, "guest_type": "lxc", "kind": "set_config",
                "params": {"cores": "2"}, "digest": "digest-101",
                "reason": "spec drift: cores 1->2"
            }],
            "candidates": [],
            "notices": [],
            "destructive": []
        })
    );
}

// ---- property tests -----------------------------------------------------------------

/// How a stock Proxmox VE node stores a benign action: the model the planner must
/// converge against.
fn apply(actual: &mut ActualState, p: &Plan, norm: &Normalizers) {
    use castellan_core::Operation::*;
    for a in &p.actions {
        let g = actual
            .guests
            .get_mut(&a.vmid)
            .expect("actions only for present guests");
        match a.kind {
            SetConfig => {
                let running = g.run == ActualRun::Running;
                let kind = g.kind;
                let spec = g
                    .spec
                    .as_mut()
                    .expect("set_config only where the spec was read");
                assert_eq!(a.digest.as_deref(), Some(spec.digest.as_str()));
                for (k, v) in &a.params {
                    match k.as_str() {
                        "cores" => spec.cores = Some(v.parse().expect("cores is a number")),
                        "memory" => spec.memory_mib = v.parse().expect("memory is a number"),
                        "description" => {
                            spec.description = Some(match kind {
                                GuestKind::Lxc => v.lines().map(|l| format!("{l}\n")).collect(),
                                GuestKind::Qemu => v.trim_end().to_owned(),
                            })
                        }
                        "tags" => spec.tags = Some(norm.tags_stored([v.as_str()])),
                        other => panic!("unexpected param {other}"),
                    }
                    if kind == GuestKind::Qemu
                        && running
                        && matches!(k.as_str(), "cores" | "memory")
                        && !g.pending_restart.contains(k)
                    {
                        g.pending_restart.push(k.clone());
                    }
                }
                for key in &a.delete {
                    match key.as_str() {
                        "description" => spec.description = None,
                        "tags" => spec.tags = None,
                        other => panic!("unexpected delete of {other}"),
                    }
                }
                spec.digest.push('+');
            }
            Start => {
                g.run = ActualRun::Running;
                g.pending_restart.clear();
            }
            // A guest that shuts down cleanly (the model has none that refuses).
            Stop | Shutdown => g.run = ActualRun::Stopped,
            Reboot => g.pending_restart.clear(),
            other => panic!("the planner emitted {other}, which is not a benign action"),
        }
    }
}

fn arb_kind() -> impl Strategy<Value = GuestKind> {
    prop_oneof![Just(GuestKind::Lxc), Just(GuestKind::Qemu)]
}

fn arb_tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![
            Just("web"),
            Just("Web"),
            Just("db"),
            Just("prod"),
            Just("a.b"),
            Just("z_9")
        ]
        .prop_map(String::from),
        0..5,
    )
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-z :%#\n]{0,12}[ \n]{0,2}"
}

fn arb_desired(vmid: Vmid) -> impl Strategy<Value = DesiredGuest> {
    (
        arb_kind(),
        prop_oneof![
            Just(DesiredRun::Running),
            Just(DesiredRun::Stopped),
            Just(DesiredRun::Unspecified)
        ],
        prop::option::of(1u32..16),
        prop::option::of((16u64 << 20)..(64u64 << 30)),
        prop::option::of(arb_text()),
        prop::option::of(arb_tags()),
        prop_oneof![Just(RestartPolicy::Manual), Just(RestartPolicy::Reboot)],
    )
        .prop_map(
            move |(kind, run, cores, memory_bytes, description, tags, restart)| DesiredGuest {
                vmid,
                kind,
                run,
                cores,
                memory_bytes,
                description,
                tags,
                restart,
                ensure: Ensure::Present,
                purge: false,
                shutdown: Default::default(),
                source: None,
                disks: Default::default(),
                restore_over: None,
                safety_backup: true,
            },
        )
}

fn arb_actual(vmid: Vmid) -> impl Strategy<Value = ActualGuest> {
    (
        arb_kind(),
        prop_oneof![
            8 => Just(ActualRun::Running),
            8 => Just(ActualRun::Stopped),
            1 => Just(ActualRun::Other("paused".into()))
        ],
        prop::option::of((
            prop::option::of(1u32..16),
            16u64..65536,
            prop::option::of(arb_text()),
            prop::option::of(arb_tags().prop_map(|t| t.join(";"))),
        )),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
    )
        .prop_map(move |(kind, run, spec, template, locked)| {
            let mut g = ActualGuest::new(vmid, kind, run);
            g.spec = spec.map(|(cores, memory_mib, description, tags)| ActualSpec {
                cores,
                memory_mib,
                description,
                tags,
                digest: format!("d{vmid}"),
                disks: Default::default(),
            });
            g.template = template;
            g.lock = locked.then(|| "backup".to_owned());
            g
        })
}

fn arb_states() -> impl Strategy<Value = (DesiredState, ActualState)> {
    prop::collection::vec((any::<bool>(), any::<bool>()), 1..24).prop_flat_map(|presence| {
        let mut desired = Vec::new();
        let mut actual = Vec::new();
        for (i, (in_d, in_a)) in presence.into_iter().enumerate() {
            let vmid = 100 + i as Vmid;
            if in_d {
                desired.push(arb_desired(vmid).boxed());
            }
            if in_a {
                actual.push(arb_actual(vmid).boxed());
            }
        }
        (desired, actual).prop_map(|(d, a)| {
            (
                DesiredState {
                    node: "pve-01".into(),
                    guests: d.into_iter().map(|g| (g.vmid, g)).collect(),
                    containers: Default::default(),
                    wipes: Default::default(),
                    decommission: None,
                },
                ActualState {
                    guests: a.into_iter().map(|g| (g.vmid, g)).collect(),
                    ..Default::default()
                },
            )
        })
    })
}

fn arb_norm() -> impl Strategy<Value = Normalizers> {
    (
        any::<bool>(),
        prop_oneof![Just(TagOrder::Alphabetical), Just(TagOrder::Config)],
    )
        .prop_map(|(tags_case_sensitive, tag_order)| Normalizers {
            tags_case_sensitive,
            tag_order,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Applying a plan and re-planning yields nothing more to do, but for the reboot that
    /// applies restart-pending changes; after that, nothing at all.
    #[test]
    fn plan_is_idempotent((desired, mut actual) in arb_states(), norm in arb_norm()) {
        let first = plan(&desired, &actual, &norm);
        prop_assert_eq!(&plan(&desired, &actual, &norm), &first);
        apply(&mut actual, &first, &norm);
        let second = plan(&desired, &actual, &norm);
        for a in &second.actions {
            prop_assert_eq!(a.kind, castellan_core::Operation::Reboot, "{:?}", second);
        }
        apply(&mut actual, &second, &norm);
        let third = plan(&desired, &actual, &norm);
        prop_assert!(third.actions.is_empty(), "{:?}", third);
        prop_assert_eq!(&third.candidates, &first.candidates);
    }

    /// Actions only ever touch guests on both sides, never write a config that was not
    /// read, and never touch a locked guest, a template or a kind mismatch.
    #[test]
    fn plan_stays_in_bounds((desired, actual) in arb_states(), norm in arb_norm()) {
        let p = plan(&desired, &actual, &norm);
        for a in &p.actions {
            let d = &desired.guests[&a.vmid];
            let g = &actual.guests[&a.vmid];
            prop_assert_eq!(d.kind, g.kind);
            prop_assert!(g.lock.is_none() && !g.template);
            if a.kind == castellan_core::Operation::SetConfig {
                let spec = g.spec.as_ref();
                prop_assert!(spec.is_some());
                prop_assert_eq!(a.digest.as_deref(), spec.map(|s| s.digest.as_str()));
            }
        }
        let vmids: Vec<_> = p.actions.iter().map(|a| a.vmid).collect();
        let mut sorted = vmids.clone();
        sorted.sort();
        prop_assert_eq!(vmids, sorted);
    }
}

fn with_disks(mut g: ActualGuest, disks: &[(&str, u64)]) -> ActualGuest {
    spec(&mut g).disks = disks.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
    g
}

const GIB: u64 = 1 << 30;

#[test]
fn provisioning_and_disk_growth() {
    use ActualRun::*;
    use GuestKind::*;
    let restore = GuestSource::Restore {
        archive: "local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst".into(),
        storage: Some("local-lvm".into()),
    };
    let clone = GuestSource::Clone {
        template: 9000,
        storage: None,
        full: Some(true),
    };
    let cases = vec![
        case(
            "a missing guest with a restore source is provisioned",
            vec![DesiredGuest {
                source: Some(restore.clone()),
                run: DesiredRun::Running,
                ..lxc(120)
            }],
            vec![],
            &[
                "120 provision source=\"restore of local:backup/vzdump-lxc-900-2026_01_01-00_00_00.tar.zst to storage local-lvm\"",
            ],
        ),
        case(
            "a missing guest with a clone source is provisioned",
            vec![DesiredGuest {
                source: Some(clone.clone()),
                ..qemu(130)
            }],
            vec![],
            &["130 provision source=\"full clone of template 9000\""],
        ),
        case(
            "a missing guest without a source is only a candidate",
            vec![lxc(121)],
            vec![],
            &["121 candidate Provisioning lxc"],
        ),
        case(
            "a present guest is never provisioned again, whatever its source",
            vec![DesiredGuest {
                source: Some(restore.clone()),
                ..lxc(120)
            }],
            vec![seen(120, Lxc, Stopped)],
            &[],
        ),
        case(
            "an absent guest with nothing there needs nothing",
            vec![DesiredGuest {
                ensure: Ensure::Absent,
                ..lxc(122)
            }],
            vec![],
            &[],
        ),
        case(
            "a smaller disk grows to the declared size, written as the node writes it",
            vec![DesiredGuest {
                disks: [("rootfs".to_owned(), 16 * GIB)].into(),
                ..lxc(101)
            }],
            vec![with_disks(seen(101, Lxc, Running), &[("rootfs", 8 * GIB)])],
            &["101 resize disk=\"rootfs\" size=\"16G\" @digest-101"],
        ),
        case(
            "sizes compare as numbers: 1024GiB is the node's 1T",
            vec![DesiredGuest {
                disks: [("scsi0".to_owned(), 1024 * GIB)].into(),
                ..qemu(200)
            }],
            vec![with_disks(seen(200, Qemu, Running), &[("scsi0", 1 << 40)])],
            &[],
        ),
        case(
            "a disk is never shrunk: the plan says so instead",
            vec![DesiredGuest {
                disks: [("scsi0".to_owned(), 16 * GIB)].into(),
                ..qemu(200)
            }],
            vec![with_disks(seen(200, Qemu, Running), &[("scsi0", 32 * GIB)])],
            &[
                "notice 200: disk scsi0 is 32GiB and cannot shrink to the declared 16GiB; disks only grow",
            ],
        ),
        case(
            "a disk the guest lacks is reported, not created",
            vec![DesiredGuest {
                disks: [("mp0".to_owned(), 16 * GIB)].into(),
                ..lxc(101)
            }],
            vec![with_disks(seen(101, Lxc, Running), &[("rootfs", 8 * GIB)])],
            &["notice 101: has no disk mp0 to grow; add it by configuration first"],
        ),
        case(
            "each disk is its own resize, after the configuration, before power",
            vec![DesiredGuest {
                cores: Some(2),
                run: DesiredRun::Running,
                disks: [
                    ("scsi0".to_owned(), 64 * GIB),
                    ("scsi1".to_owned(), 1536 << 20),
                ]
                .into(),
                ..qemu(200)
            }],
            vec![with_disks(
                seen(200, Qemu, Stopped),
                &[("scsi0", 32 * GIB), ("scsi1", 1 << 30)],
            )],
            &[
                "200 set_config cores=\"2\" @digest-200",
                "200 resize disk=\"scsi0\" size=\"64G\" @digest-200",
                "200 resize disk=\"scsi1\" size=\"1536M\" @digest-200",
                "200 start",
            ],
        ),
    ];
    for c in cases {
        let d = DesiredState {
            node: "pve-01".into(),
            guests: c.desired.into_iter().map(|g| (g.vmid, g)).collect(),
            ..Default::default()
        };
        let a = ActualState {
            guests: c.actual.into_iter().map(|g| (g.vmid, g)).collect(),
            ..Default::default()
        };
        let p = plan(&d, &a, &c.norm);
        assert_eq!(render(&p), c.want, "{}\nplan: {p:#?}", c.name);
    }
}

#[test]
fn a_vmid_elsewhere_in_the_cluster_is_never_provisioned() {
    let d = DesiredState {
        node: "pve-01".into(),
        guests: [(
            140,
            DesiredGuest {
                source: Some(GuestSource::Clone {
                    template: 9000,
                    storage: None,
                    full: None,
                }),
                ..lxc(140)
            },
        )]
        .into(),
        ..Default::default()
    };
    let a = ActualState {
        elsewhere: [(140, "pve-02".to_owned())].into(),
        ..Default::default()
    };
    let p = plan(&d, &a, &Normalizers::default());
    assert_eq!(
        render(&p),
        ["notice 140: is a guest on node pve-02 of the cluster; not provisioned here"]
    );
    assert!(
        !p.converged(),
        "a declared guest living elsewhere is not convergence"
    );
}

#[test]
fn restore_over_is_proposed_until_the_journal_shows_that_archive_restored() {
    use ActualRun::*;
    let norm = Normalizers::default;
    let archive = "local:backup/vzdump-lxc-101-2026_12_01-03_00_00.tar.zst";
    let with_restore = |storage: Option<&str>, safety_backup: bool| {
        let mut g = lxc(101);
        g.cores = Some(4);
        g.run = DesiredRun::Running;
        g.restore_over = Some(RestoreOver {
            archive: archive.into(),
            storage: storage.map(str::to_owned),
        });
        g.safety_backup = safety_backup;
        g
    };
    // Waiting for its signature: only the restore, bound to the digest; the drifted
    // cores and the stopped power state wait (each would move the digest).
    check(
        vec![with_restore(Some("local-lvm"), true)],
        vec![seen(101, GuestKind::Lxc, Stopped)],
        norm(),
        &[&format!(
            "101 restore_overwrite lxc pve-01 @digest-101 archive={archive} storage=local-lvm"
        )],
    );
    // The waiver is part of what is signed.
    check(
        vec![with_restore(None, false)],
        vec![seen(101, GuestKind::Lxc, Stopped)],
        norm(),
        &[&format!(
            "101 restore_overwrite lxc pve-01 @digest-101 archive={archive} backup=0"
        )],
    );
    // Restored (the journal says so): the guest is converged as usual.
    let mut done = seen(101, GuestKind::Lxc, Stopped);
    done.restored = Some(archive.into());
    check(
        vec![with_restore(None, true)],
        vec![done.clone()],
        norm(),
        &["101 set_config cores=\"4\" @digest-101", "101 start"],
    );
    // Another archive declared later: restored again.
    done.restored = Some("local:backup/vzdump-lxc-101-2026_11_01-03_00_00.tar.zst".into());
    check(
        vec![with_restore(None, true)],
        vec![done],
        norm(),
        &[&format!(
            "101 restore_overwrite lxc pve-01 @digest-101 archive={archive}"
        )],
    );
    // Locked: reported, not proposed.
    let mut locked = seen(101, GuestKind::Lxc, Stopped);
    locked.lock = Some("backup".into());
    check(
        vec![with_restore(None, true)],
        vec![locked],
        norm(),
        &["notice 101: locked (backup); waiting"],
    );
}

#[test]
fn a_waived_safety_backup_is_part_of_the_destroy() {
    let mut g = absent(lxc(101), true);
    g.safety_backup = false;
    check(
        vec![g],
        vec![seen(101, GuestKind::Lxc, ActualRun::Stopped)],
        Normalizers::default(),
        &["101 destroy lxc pve-01 @digest-101 backup=0 purge=1"],
    );
}

#[test]
fn a_declared_wipe_names_only_unreferenced_volumes_that_are_there() {
    use castellan_core::plan::StorageNotice;
    let d = DesiredState {
        node: "pve-01".into(),
        guests: Default::default(),
        containers: Default::default(),
        wipes: [(
            "local-lvm".to_owned(),
            [
                "local-lvm:vm-105-disk-0",
                "local-lvm:vm-105-disk-1",
                "local-lvm:vm-106-disk-0",
                "local-lvm:vm-107-disk-0",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        )]
        .into(),
        decommission: None,
    };
    let vol = |size: u64, by: Option<&str>| StorageVolume {
        size,
        referenced_by: by.map(str::to_owned),
    };
    let mut a = ActualState::default();
    a.storages.insert(
        "local-lvm".into(),
        [
            ("local-lvm:vm-105-disk-0".to_owned(), vol(8 << 30, None)),
            ("local-lvm:vm-105-disk-1".to_owned(), vol(4 << 30, None)),
            (
                "local-lvm:vm-106-disk-0".to_owned(),
                vol(1 << 30, Some("CT 106's rootfs")),
            ),
            ("local-lvm:vm-200-disk-0".to_owned(), vol(1 << 30, None)),
        ]
        .into(),
    );
    let p = plan(&d, &a, &Normalizers::default());
    assert_eq!(p.destructive.len(), 1, "{p:?}");
    let w = &p.destructive[0];
    assert_eq!(w.target.to_string(), "storage/local-lvm");
    assert_eq!(w.op.as_str(), "wipe_storage");
    // 107 is gone (done), 106 is in use (reported), 200 was never named (untouched).
    assert_eq!(
        w.params["volumes"],
        "local-lvm:vm-105-disk-0=8589934592,local-lvm:vm-105-disk-1=4294967296"
    );
    assert_eq!(
        p.storage_notices,
        [StorageNotice::Referenced {
            storage: "local-lvm".into(),
            volume: "local-lvm:vm-106-disk-0".into(),
            by: "CT 106's rootfs".into(),
        }]
    );
    assert!(!p.converged());
    // The digest moves with any size: an op approved against it is then stale.
    let before = w.state_digest.clone();
    a.storages
        .entry("local-lvm".to_owned())
        .or_default()
        .insert("local-lvm:vm-105-disk-1".to_owned(), vol(5 << 30, None));
    assert_ne!(
        plan(&d, &a, &Normalizers::default()).destructive[0].state_digest,
        before
    );
    // Unreadable storage: nothing proposed, reported.
    let p = plan(&d, &ActualState::default(), &Normalizers::default());
    assert!(p.destructive.is_empty());
    assert_eq!(
        p.storage_notices,
        [StorageNotice::Unobserved {
            storage: "local-lvm".into()
        }]
    );
    // Everything gone: converged.
    let mut empty = ActualState::default();
    empty
        .storages
        .insert("local-lvm".into(), Default::default());
    assert!(plan(&d, &empty, &Normalizers::default()).converged());
}

#[test]
fn a_decommissioned_node_gets_one_op_naming_every_guest_then_its_own_storage() {
    use castellan_core::decommission::{Approved, MAX_DECOMMISSION_GUESTS};
    use castellan_core::plan::StorageNotice;
    let hexd = |vmid: Vmid| format!("{vmid:040x}");
    let with_digest = |mut g: ActualGuest| {
        let v = g.vmid;
        spec(&mut g).digest = hexd(v);
        g
    };
    let d = DesiredState {
        node: "pve-01".into(),
        decommission: Some(Decommission {
            safety_backup: true,
        }),
        ..Default::default()
    };
    let vol = |size: u64, by: Option<&str>| StorageVolume {
        size,
        referenced_by: by.map(str::to_owned),
    };
    let mut a = ActualState {
        guests: [
            with_digest(seen(101, GuestKind::Lxc, ActualRun::Running)),
            with_digest(seen(102, GuestKind::Qemu, ActualRun::Stopped)),
        ]
        .into_iter()
        .map(|g| (g.vmid, g))
        .collect(),
        local_storages: Some(["local-lvm".to_owned()].into()),
        ..Default::default()
    };
    a.storages.insert(
        "local-lvm".into(),
        [
            (
                "local-lvm:vm-101-disk-0".to_owned(),
                vol(8 << 30, Some("CT 101's rootfs")),
            ),
            ("local-lvm:vm-300-disk-0".to_owned(), vol(1 << 30, None)),
        ]
        .into(),
    );
    let p = plan(&d, &a, &Normalizers::default());
    assert!(p.actions.is_empty() && p.candidates.is_empty(), "{p:?}");
    assert_eq!(p.destructive.len(), 1, "{p:?}");
    let op = &p.destructive[0];
    assert_eq!(op.op.as_str(), "decommission");
    assert_eq!(op.target.to_string(), "node/pve-01");
    // Both guests with their digests; the orphan volume with its size; the rootfs of
    // 101 goes with 101 and is not named.
    assert_eq!(
        op.params["guests"],
        format!("lxc/101={},qemu/102={}", hexd(101), hexd(102))
    );
    assert_eq!(op.params["volumes"], "local-lvm:vm-300-disk-0=1073741824");
    assert!(!op.params.contains_key("backup"));
    let approved = Approved::from_params(&op.params).expect("the planner's params parse");
    assert_eq!(
        op.state_digest,
        castellan_core::decommission::digest("pve-01", &approved.guests, &approved.volumes)
    );
    assert!(op.op.check_params(&op.params).is_ok());
    // Any guest's change moves the digest.
    let mut b = a.clone();
    if let Some(g) = b.guests.get_mut(&102) {
        spec(g).digest = hexd(999);
    }
    assert_ne!(
        plan(&d, &b, &Normalizers::default()).destructive[0].state_digest,
        op.state_digest
    );

    // Waived backups are signed; an unreadable guest is reported and holds the storage back.
    let waived = DesiredState {
        decommission: Some(Decommission {
            safety_backup: false,
        }),
        ..d.clone()
    };
    let mut c = a.clone();
    if let Some(g) = c.guests.get_mut(&102) {
        g.spec = None;
    }
    let p = plan(&waived, &c, &Normalizers::default());
    let op = &p.destructive[0];
    assert_eq!(op.params["guests"], format!("lxc/101={}", hexd(101)));
    assert_eq!(op.params["backup"], "0");
    assert!(!op.params.contains_key("volumes"), "{op:?}");
    assert!(p.notices.iter().any(|n| n.vmid == 102));

    // More guests than one op names: the first batch, no storage yet.
    let mut many = ActualState {
        local_storages: Some(Default::default()),
        ..Default::default()
    };
    for vmid in 100..100 + MAX_DECOMMISSION_GUESTS as Vmid + 5 {
        many.guests.insert(
            vmid,
            with_digest(seen(vmid, GuestKind::Lxc, ActualRun::Stopped)),
        );
    }
    let p = plan(&d, &many, &Normalizers::default());
    let first = Approved::from_params(&p.destructive[0].params).expect("parses");
    assert_eq!(first.guests.len(), MAX_DECOMMISSION_GUESTS);
    assert_eq!(first.guests.keys().next(), Some(&100));

    // Guests gone: the volumes alone; a volume something elsewhere uses is reported.
    let mut e = a.clone();
    e.guests.clear();
    e.storages.insert(
        "local-lvm".into(),
        [
            ("local-lvm:vm-300-disk-0".to_owned(), vol(1 << 30, None)),
            (
                "local-lvm:vm-400-disk-0".to_owned(),
                vol(2 << 30, Some("VM 400, which node pve-02 has")),
            ),
        ]
        .into(),
    );
    let p = plan(&d, &e, &Normalizers::default());
    assert!(!p.destructive[0].params.contains_key("guests"));
    assert_eq!(p.storage_notices.len(), 1, "{p:?}");
    assert!(
        matches!(&p.storage_notices[0], StorageNotice::Referenced { volume, .. } if volume == "local-lvm:vm-400-disk-0")
    );
    // Storages not listed: nothing about volumes proposed, said so.
    e.local_storages = None;
    let p = plan(&d, &e, &Normalizers::default());
    assert!(p.destructive.is_empty());
    assert_eq!(p.storage_notices, [StorageNotice::LocalStoragesUnobserved]);
    assert!(!p.converged());
    // Nothing left: decommissioned, converged.
    let done = ActualState {
        local_storages: Some(["local-lvm".to_owned()].into()),
        storages: [("local-lvm".to_owned(), Default::default())].into(),
        ..Default::default()
    };
    assert!(plan(&d, &done, &Normalizers::default()).converged());
}

#[test]
fn a_destroy_says_what_it_takes_with_it_before_anyone_signs() {
    let mut g = seen(101, GuestKind::Lxc, ActualRun::Stopped);
    spec(&mut g).disks.insert("rootfs".into(), 8 << 30);
    g.ha_managed = true;
    let d = DesiredState {
        node: "pve-01".into(),
        guests: [(101, absent(lxc(101), false))].into(),
        ..Default::default()
    };
    let a = ActualState {
        guests: [(101, g.clone())].into(),
        ..Default::default()
    };
    let p = plan(&d, &a, &Normalizers::default());
    assert_eq!(
        p.affects["lxc/101"],
        [
            "CT 101: disk rootfs (8GiB)",
            "CT 101: HA-managed; the node refuses to destroy it without purge (purge = true)",
        ]
    );
    let d = DesiredState {
        guests: [(101, absent(lxc(101), true))].into(),
        ..d
    };
    let p = plan(&d, &a, &Normalizers::default());
    assert_eq!(
        p.affects["lxc/101"][1],
        "CT 101: removed from every backup job and replication job that names it, and from HA"
    );
}

/// The side-by-side view of a guest (the hub's host page) agrees with the planner: a field
/// matches exactly when the plan leaves it alone.
#[test]
fn a_guest_side_by_side_matches_where_the_plan_changes_nothing() {
    use castellan_core::compare::side_by_side;
    use castellan_core::plan::{plan_guest, plan_missing};
    let norm = Normalizers::default();
    let mut d = lxc(101);
    d.run = DesiredRun::Running;
    d.cores = Some(2);
    d.memory_bytes = Some(512 << 20);
    d.description = Some("web ".repeat(100));
    d.disks.insert("rootfs".into(), 8 << 30);
    let mut a = seen(101, GuestKind::Lxc, ActualRun::Stopped);
    spec(&mut a).disks.insert("rootfs".into(), 8 << 30);
    let mut p = Plan::default();
    plan_guest("pve-01", &d, &a, &norm, &mut p);
    let rows = side_by_side(&d, Some(&a), &p);
    let get = |f: &str| rows.iter().find(|r| r.field == f).expect(f).clone();
    assert_eq!(rows[0].field, "exists");
    assert!(rows[0].matches);
    let run = get("run");
    assert_eq!(
        (run.desired.as_str(), run.actual.as_str(), run.matches),
        ("running", "stopped", false)
    );
    let cores = get("cores");
    assert_eq!(
        (cores.desired.as_str(), cores.actual.as_str(), cores.matches),
        ("2", "1", false)
    );
    let memory = get("memory");
    assert_eq!((memory.desired.as_str(), memory.matches), ("512MiB", true));
    assert!(get("disk rootfs").matches);
    let description = get("description");
    assert!(!description.matches);
    assert_eq!(
        description.desired.chars().count(),
        castellan_core::compare::MAX_VALUE_CHARS + 1,
        "cut, with an ellipsis"
    );

    // Once the node has what is declared, every field matches.
    a.run = ActualRun::Running;
    spec(&mut a).cores = Some(2);
    spec(&mut a).description = d.description.clone();
    let mut p = Plan::default();
    plan_guest("pve-01", &d, &a, &norm, &mut p);
    assert!(
        side_by_side(&d, Some(&a), &p).iter().all(|r| r.matches),
        "{p:?}"
    );

    // A declared guest the node lacks: missing, nothing else readable.
    let mut p = Plan::default();
    plan_missing(&d, None, &mut p);
    let rows = side_by_side(&d, None, &p);
    assert_eq!(
        (rows[0].actual.as_str(), rows[0].matches),
        ("missing", false)
    );
    assert!(rows.iter().skip(1).all(|r| r.actual == "–" && !r.matches));
}
