//! `service create|update` flags → ServiceSpec, and their errors.

use shoal_proto::objects::{
    ServiceSpec, endpoint_spec, mount, port_config, restart_policy, service_spec::Mode,
    update_config,
};

use super::parse;
use crate::cmd::service::ServiceCommand;
use crate::cmd::service::to_spec::{Lookup, create_spec, update_spec};

fn lookup() -> Lookup {
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    Lookup {
        secrets: pairs(&[("sec111", "db_pass"), ("sec222", "api_key")]),
        configs: pairs(&[("cfg111", "nginx_conf")]),
        networks: pairs(&[("net111", "backend"), ("net222", "frontend")]),
    }
}

fn create(args: &[&str]) -> anyhow::Result<ServiceSpec> {
    let mut argv = vec!["create"];
    argv.extend_from_slice(args);
    match parse(&argv).map_err(|e| anyhow::anyhow!("{e}"))? {
        ServiceCommand::Create(a) => create_spec(&a, &lookup()),
        other => panic!("{other:?}"),
    }
}

fn update(spec: &mut ServiceSpec, args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["update"];
    argv.extend_from_slice(args);
    argv.push("web");
    match parse(&argv).map_err(|e| anyhow::anyhow!("{e}"))? {
        ServiceCommand::Update(a) => update_spec(spec, &a, &lookup()),
        other => panic!("{other:?}"),
    }
}

fn err(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn secs(d: &Option<prost_types::Duration>) -> f64 {
    d.map_or(-1.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9)
}

#[test]
fn defaults_are_dockers() {
    let s = create(&["nginx"]).unwrap();
    assert_eq!(
        s.mode,
        Some(Mode::Replicated(shoal_proto::objects::ReplicatedService {
            replicas: 1
        }))
    );
    let u = s.update.unwrap();
    assert_eq!(u.parallelism, 1);
    assert_eq!(secs(&u.delay), 0.0);
    assert_eq!(u.failure_action(), update_config::FailureAction::Pause);
    assert_eq!(secs(&u.monitor), 5.0);
    assert_eq!(u.order(), update_config::Order::StopFirst);
    assert_eq!(s.rollback.unwrap().parallelism, 1);
    let task = s.task.unwrap();
    let r = task.restart.unwrap();
    assert_eq!(r.condition(), restart_policy::Condition::Any);
    assert_eq!(secs(&r.delay), 5.0);
    assert_eq!(
        s.endpoint.unwrap().mode(),
        endpoint_spec::ResolutionMode::Vip
    );
    assert_eq!(task.container.unwrap().image, "nginx");
}

#[test]
fn command_and_args_as_docker() {
    let s = create(&[
        "--name",
        "web",
        "--entrypoint",
        "/bin/sh -c",
        "busybox",
        "sleep",
        "-x",
        "100",
    ])
    .unwrap();
    let c = s.task.unwrap().container.unwrap();
    assert_eq!(c.command, ["/bin/sh", "-c"]);
    assert_eq!(c.args, ["sleep", "-x", "100"]);
    assert_eq!(s.annotations.unwrap().name, "web");
}

#[test]
fn modes_and_replicas() {
    let s = create(&["--replicas", "3", "nginx"]).unwrap();
    assert!(matches!(s.mode, Some(Mode::Replicated(r)) if r.replicas == 3));
    let s = create(&["--mode", "global", "nginx"]).unwrap();
    assert!(matches!(s.mode, Some(Mode::Global(_))));
    let s = create(&[
        "--mode",
        "replicated-job",
        "--replicas",
        "10",
        "--max-concurrent",
        "5",
        "x",
    ])
    .unwrap();
    assert!(
        matches!(s.mode, Some(Mode::ReplicatedJob(j)) if j.total_completions == 10 && j.max_concurrent == 5)
    );
    // Jobs must not restart a finished task.
    assert_eq!(
        s.task.unwrap().restart.unwrap().condition(),
        restart_policy::Condition::OnFailure
    );
    let s = create(&["--mode", "global-job", "x"]).unwrap();
    assert!(matches!(s.mode, Some(Mode::GlobalJob(_))));
    assert!(
        err(create(&["--mode", "global", "--replicas", "2", "x"]))
            .contains("replicas can only be used")
    );
    assert!(err(create(&["--max-concurrent", "2", "x"])).contains("replicated-job"));
    assert!(err(create(&["--mode", "sideways", "x"])).contains("sideways"));
}

#[test]
fn env_labels_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.env");
    std::fs::write(&file, "# comment\n\nA=from-file\nB=2\n").unwrap();
    let path = file.to_str().unwrap();
    let s = create(&[
        "--env-file",
        path,
        "-e",
        "A=1",
        "--env",
        "C=3",
        "--label",
        "tier=web",
        "--container-label",
        "x=y",
        "nginx",
    ])
    .unwrap();
    let c = s.task.unwrap().container.unwrap();
    assert_eq!(c.env, ["A=1", "B=2", "C=3"]);
    assert_eq!(c.labels["x"], "y");
    assert_eq!(s.annotations.unwrap().labels["tier"], "web");
    assert!(err(create(&["--env-file", "/nonexistent.env", "x"])).contains("/nonexistent.env"));
    std::fs::write(&file, "BAD NAME=1\n").unwrap();
    assert!(err(create(&["--env-file", path, "x"])).contains("line 1"));
    assert!(err(create(&["--label", "=v", "x"])).contains("key is empty"));
}

#[test]
fn container_settings() {
    let s = create(&[
        "--workdir",
        "/srv",
        "--user",
        "1000:1000",
        "--hostname",
        "h1",
        "--stop-grace-period",
        "1m30s",
        "--stop-signal",
        "SIGQUIT",
        "nginx",
    ])
    .unwrap();
    let c = s.task.unwrap().container.unwrap();
    assert_eq!(
        (c.dir.as_str(), c.user.as_str(), c.hostname.as_str()),
        ("/srv", "1000:1000", "h1")
    );
    assert_eq!(secs(&c.stop_grace_period), 90.0);
    assert_eq!(c.stop_signal, "SIGQUIT");
    assert!(err(create(&["--stop-grace-period", "soon", "x"])).contains("invalid duration"));
}

#[test]
fn ports_mounts_and_endpoint() {
    let s = create(&[
        "-p",
        "8080:80",
        "--publish",
        "mode=host,target=53,published=53,protocol=udp",
        "--mount",
        "type=bind,source=/data,target=/data,readonly",
        "--endpoint-mode",
        "vip",
        "nginx",
    ])
    .unwrap();
    let e = s.endpoint.unwrap();
    assert_eq!(e.ports.len(), 2);
    assert_eq!(
        (e.ports[0].published_port, e.ports[0].target_port),
        (8080, 80)
    );
    assert_eq!(e.ports[1].publish_mode(), port_config::PublishMode::Host);
    let m = &s.task.unwrap().container.unwrap().mounts[0];
    assert_eq!(m.r#type(), mount::Type::Bind);
    assert!(m.read_only);
    assert!(err(create(&["--endpoint-mode", "dnsrr", "-p", "80:80", "x"])).contains("dnsrr"));
    let s = create(&["--endpoint-mode", "dnsrr", "-p", "mode=host,target=80", "x"]).unwrap();
    assert_eq!(
        s.endpoint.unwrap().mode(),
        endpoint_spec::ResolutionMode::Dnsrr
    );
    assert!(err(create(&["-p", "80:80/icmp", "x"])).contains("invalid protocol"));
    assert!(err(create(&["--mount", "type=bind,target=/x", "x"])).contains("needs a source"));
}

#[test]
fn secrets_configs_and_networks_resolve() {
    let s = create(&[
        "--secret",
        "db_pass",
        "--secret",
        "source=api_key,target=key,uid=33,gid=33,mode=0400",
        "--config",
        "nginx_conf",
        "--network",
        "backend",
        "--network",
        "net222",
        "nginx",
    ])
    .unwrap();
    let task = s.task.unwrap();
    let c = task.container.unwrap();
    assert_eq!(
        (
            c.secrets[0].secret_id.as_str(),
            c.secrets[0].secret_name.as_str()
        ),
        ("sec111", "db_pass")
    );
    let t = c.secrets[0].target.clone().unwrap();
    assert_eq!((t.name.as_str(), t.mode), ("db_pass", 0o444));
    let t = c.secrets[1].target.clone().unwrap();
    assert_eq!(
        (t.name.as_str(), t.uid, t.gid, t.mode),
        ("key", 33, 33, 0o400)
    );
    assert_eq!(c.configs[0].config_id, "cfg111");
    let nets: Vec<&str> = task.networks.iter().map(|n| n.target.as_str()).collect();
    assert_eq!(nets, ["net111", "net222"]);
    let e = err(create(&["--secret", "nope", "x"]));
    assert!(
        e.contains("secret nope not found") && e.contains("shoal secret create"),
        "{e}"
    );
    assert!(err(create(&["--config", "nope", "x"])).contains("config nope not found"));
    assert!(err(create(&["--network", "nope", "x"])).contains("network nope not found"));
}

#[test]
fn placement_and_resources() {
    let s = create(&[
        "--constraint",
        "node.role==worker",
        "--placement-pref",
        "spread=node.labels.zone",
        "--replicas-max-per-node",
        "2",
        "--reserve-cpu",
        "0.5",
        "--reserve-memory",
        "256M",
        "--limit-cpu",
        "2",
        "--limit-memory",
        "1g",
        "nginx",
    ])
    .unwrap();
    let t = s.task.unwrap();
    let p = t.placement.unwrap();
    assert_eq!(p.constraints, ["node.role==worker"]);
    assert_eq!(p.preferences[0].spread_descriptor, "node.labels.zone");
    assert_eq!(p.max_replicas, 2);
    let r = t.resources.unwrap();
    assert_eq!(r.reservations.unwrap().nano_cpus, 500_000_000);
    assert_eq!(r.reservations.unwrap().memory_bytes, 256 << 20);
    assert_eq!(r.limits.unwrap().nano_cpus, 2_000_000_000);
    assert_eq!(r.limits.unwrap().memory_bytes, 1 << 30);
    assert!(err(create(&["--placement-pref", "pack=x", "x"])).contains("spread="));
    assert!(err(create(&["--limit-memory", "lots", "x"])).contains("invalid size"));
    assert!(err(create(&["--reserve-cpu", "many", "x"])).contains("invalid CPU"));
}

#[test]
fn restart_update_rollback_and_health() {
    let s = create(&[
        "--restart-condition",
        "on-failure",
        "--restart-delay",
        "10s",
        "--restart-max-attempts",
        "3",
        "--restart-window",
        "2m",
        "--update-parallelism",
        "2",
        "--update-delay",
        "500ms",
        "--update-failure-action",
        "rollback",
        "--update-monitor",
        "1m",
        "--update-max-failure-ratio",
        "0.25",
        "--update-order",
        "start-first",
        "--rollback-parallelism",
        "0",
        "--rollback-order",
        "start-first",
        "--health-cmd",
        "curl -f localhost",
        "--health-interval",
        "5s",
        "--health-retries",
        "2",
        "nginx",
    ])
    .unwrap();
    let t = s.task.unwrap();
    let r = t.restart.unwrap();
    assert_eq!(r.condition(), restart_policy::Condition::OnFailure);
    assert_eq!(
        (secs(&r.delay), r.max_attempts, secs(&r.window)),
        (10.0, 3, 120.0)
    );
    let u = s.update.unwrap();
    assert_eq!(
        (u.parallelism, secs(&u.delay), secs(&u.monitor)),
        (2, 0.5, 60.0)
    );
    assert_eq!(u.failure_action(), update_config::FailureAction::Rollback);
    assert_eq!(u.max_failure_ratio, 0.25);
    assert_eq!(u.order(), update_config::Order::StartFirst);
    let rb = s.rollback.unwrap();
    assert_eq!(
        (rb.parallelism, rb.order()),
        (0, update_config::Order::StartFirst)
    );
    let h = t.container.unwrap().healthcheck.unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "curl -f localhost"]);
    assert_eq!((secs(&h.interval), h.retries), (5.0, 2));
    let s = create(&["--no-healthcheck", "nginx"]).unwrap();
    assert_eq!(
        s.task.unwrap().container.unwrap().healthcheck.unwrap().test,
        ["NONE"]
    );
    assert!(
        err(create(&["--no-healthcheck", "--health-cmd", "x", "x"])).contains("cannot be used")
    );
    assert!(
        err(create(&["--rollback-failure-action", "rollback", "x"]))
            .contains("cannot itself roll back")
    );
    assert!(err(create(&["--update-max-failure-ratio", "2", "x"])).contains("0 to 1"));
    assert!(err(create(&["--restart-condition", "sometimes", "x"])).contains("sometimes"));
}

#[test]
fn update_edits_lists_and_scalars() {
    let mut s = create(&[
        "-e",
        "A=1",
        "-e",
        "B=2",
        "-p",
        "8080:80",
        "-p",
        "53:53/udp",
        "--secret",
        "db_pass",
        "--constraint",
        "node.role==worker",
        "--label",
        "keep=1",
        "--label",
        "drop=1",
        "--network",
        "backend",
        "--mount",
        "source=v,target=/v",
        "nginx",
    ])
    .unwrap();
    update(
        &mut s,
        &[
            "--image",
            "nginx:1.26",
            "--env-add",
            "A=9",
            "--env-add",
            "C=3",
            "--env-rm",
            "B",
            "--publish-rm",
            "53/udp",
            "--publish-add",
            "9090:90",
            "--secret-rm",
            "db_pass",
            "--secret-add",
            "api_key",
            "--constraint-rm",
            "node.role==worker",
            "--constraint-add",
            "node.labels.ssd==true",
            "--label-rm",
            "drop",
            "--label-add",
            "new=2",
            "--network-rm",
            "backend",
            "--network-add",
            "frontend",
            "--mount-rm",
            "/v",
            "--replicas",
            "4",
            "--force",
            "--update-order",
            "start-first",
            "--args=-g daemon",
        ],
    )
    .unwrap();
    assert!(matches!(s.mode, Some(Mode::Replicated(r)) if r.replicas == 4));
    let t = s.task.clone().unwrap();
    let c = t.container.unwrap();
    assert_eq!(c.image, "nginx:1.26");
    assert_eq!(c.env, ["A=9", "C=3"]);
    assert_eq!(c.args, ["-g", "daemon"]);
    assert_eq!(c.secrets.len(), 1);
    assert_eq!(c.secrets[0].secret_name, "api_key");
    assert!(c.mounts.is_empty());
    assert_eq!(t.placement.unwrap().constraints, ["node.labels.ssd==true"]);
    assert_eq!(t.networks[0].target, "net222");
    assert_eq!(t.force_update, 1);
    let ports: Vec<(u32, u32)> = s
        .endpoint
        .clone()
        .unwrap()
        .ports
        .iter()
        .map(|p| (p.published_port, p.target_port))
        .collect();
    assert_eq!(ports, [(8080, 80), (9090, 90)]);
    let labels = s.annotations.clone().unwrap().labels;
    assert_eq!(labels.keys().collect::<Vec<_>>(), ["keep", "new"]);
    assert_eq!(s.update.unwrap().order(), update_config::Order::StartFirst);
    // Flags not given leave the spec alone.
    let before = s.clone();
    update(&mut s, &[]).unwrap();
    assert_eq!(s, before);
    assert!(err(update(&mut s, &["--network-add", "frontend"])).contains("already attached"));
    assert!(err(update(&mut s, &["--secret-add", "nope"])).contains("not found"));
    let mut g = create(&["--mode", "global", "x"]).unwrap();
    assert!(err(update(&mut g, &["--replicas", "2"])).contains("replicas can only be used"));
}

#[test]
fn scale_and_rollback_arguments() {
    match parse(&["scale", "web=3", "api=0", "-d"]).unwrap() {
        ServiceCommand::Scale(a) => {
            assert_eq!(a.scales, [("web".to_string(), 3), ("api".to_string(), 0)]);
            assert!(a.detach);
        }
        other => panic!("{other:?}"),
    }
    let e = parse(&["scale", "web"]).unwrap_err().to_string();
    assert!(e.contains("invalid scale specifier 'web'"), "{e}");
    let e = parse(&["scale", "web=three"]).unwrap_err().to_string();
    assert!(e.contains("invalid replicas value"), "{e}");
    let mut spec = create(&["--mode", "global", "x"]).unwrap();
    let e = crate::cmd::service::set_scale(&mut spec, 2)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "scale can only be used with replicated or replicated-job mode"
    );
    assert!(
        matches!(parse(&["rollback", "-d", "web"]).unwrap(), ServiceCommand::Rollback(a) if a.detach)
    );
}
