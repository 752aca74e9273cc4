//! Valid files: the model and the specs Docker's naming and labels give.

use shoal_proto::objects::{
    ServiceSpec, mount, port_config, restart_policy, service_spec::Mode, update_config,
};

use super::load_files;
use crate::compose::{NAMESPACE_LABEL, desired};

fn specs(files: &[(&str, &str)]) -> (crate::compose::Desired, Vec<String>) {
    let (_dir, r) = load_files(files);
    let loaded = r.unwrap_or_else(|e| panic!("{e}"));
    (desired("app", &loaded.project), loaded.warnings)
}

fn service<'a>(d: &'a crate::compose::Desired, name: &str) -> &'a ServiceSpec {
    d.services
        .iter()
        .find(|s| s.annotations.as_ref().is_some_and(|a| a.name == name))
        .unwrap_or_else(|| panic!("no service {name}"))
}

const FULL: &str = r#"
version: "3.9"
x-defaults: &defaults
  image: busybox:${TAG}
  environment:
    SHARED: "yes"
services:
  web:
    <<: *defaults
    command: sleep 1000
    entrypoint: ["/bin/sh", "-c"]
    environment:
      - A=1
      - B
    labels:
      tier: front
    ports:
      - "8080:80"
      - target: 443
        published: 8443
        protocol: udp
        mode: host
    networks:
      front:
        aliases: [www]
    volumes:
      - data:/data:ro
      - /srv:/srv
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 64m
    secrets:
      - pw
      - source: pw
        target: other
        mode: 0400
    configs:
      - cfg
    healthcheck:
      test: curl -f http://localhost
      interval: 10s
      timeout: 2s
      retries: 3
      start_period: 1m
    stop_grace_period: 1m30s
    user: "1000"
    working_dir: /app
    hostname: web
    init: true
    build: .
    depends_on: [db]
    deploy:
      replicas: ${REPLICAS}
      endpoint_mode: dnsrr
      labels:
        svc: web
      placement:
        constraints: [node.role == worker]
        preferences:
          - spread: node.labels.zone
        max_replicas_per_node: 2
      resources:
        limits: {cpus: "0.5", memory: 512M}
        reservations: {memory: 128M}
      restart_policy:
        condition: on-failure
        delay: 2s
        max_attempts: 3
        window: 30s
      update_config:
        parallelism: 2
        delay: 5s
        failure_action: rollback
        monitor: 10s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config:
        parallelism: 0
        order: stop-first
  agent:
    image: busybox
    command: ["sleep", "1000"]
    deploy:
      mode: global
networks:
  front:
    driver_opts: {encrypted: ""}
volumes:
  data: {}
secrets:
  pw:
    file: ./pw.txt
configs:
  cfg:
    file: ./cfg.txt
"#;

fn full() -> (crate::compose::Desired, Vec<String>) {
    specs(&[
        ("compose.yml", FULL),
        ("pw.txt", "s3cret"),
        ("cfg.txt", "k=v"),
    ])
}

#[test]
fn names_and_labels_as_docker() {
    let (d, warnings) = full();
    assert_eq!(
        warnings,
        vec!["Ignoring unsupported options: build, depends_on".to_string()]
    );
    let web = service(&d, "app_web");
    let labels = &web
        .annotations
        .as_ref()
        .map(|a| a.labels.clone())
        .unwrap_or_default();
    assert_eq!(labels.get(NAMESPACE_LABEL).map(String::as_str), Some("app"));
    assert_eq!(
        labels.get("com.docker.stack.image").map(String::as_str),
        Some("busybox:1.36")
    );
    assert_eq!(labels.get("svc").map(String::as_str), Some("web"));
    let nets: Vec<String> = d
        .networks
        .iter()
        .filter_map(|n| n.annotations.as_ref().map(|a| a.name.clone()))
        .collect();
    // `agent` has no networks: it joins app_default.
    assert_eq!(nets, ["app_default", "app_front"]);
    assert!(d.networks.iter().all(|n| {
        n.driver_config
            .as_ref()
            .is_some_and(|c| c.name == "overlay")
    }));
    assert_eq!(
        d.secrets[0].annotations.as_ref().map(|a| a.name.as_str()),
        Some("app_pw")
    );
    assert_eq!(d.secrets[0].data, b"s3cret");
    assert_eq!(d.configs[0].data, b"k=v");
    let agent = service(&d, "app_agent");
    assert!(matches!(agent.mode, Some(Mode::Global(_))));
    let t = agent
        .task
        .as_ref()
        .map(|t| t.networks.clone())
        .unwrap_or_default();
    assert_eq!(t[0].target, "app_default");
    assert_eq!(t[0].aliases, ["agent"]);
}

#[test]
fn container_fields() {
    let (d, _) = full();
    let web = service(&d, "app_web");
    let task = web.task.clone().unwrap_or_default();
    let c = task.container.clone().unwrap_or_default();
    assert_eq!(c.command, ["/bin/sh", "-c"]);
    assert_eq!(c.args, ["sleep", "1000"]);
    // A merge key is shallow: the service's own `environment` replaces the
    // anchor's. `B` is unset in the environment, so dropped.
    assert_eq!(c.env, ["A=1"]);
    assert_eq!(c.labels.get("tier").map(String::as_str), Some("front"));
    assert_eq!(
        (c.user.as_str(), c.dir.as_str(), c.hostname.as_str()),
        ("1000", "/app", "web")
    );
    assert!(c.init);
    assert_eq!(c.stop_grace_period.map(|d| d.seconds), Some(90));
    let h = c.healthcheck.clone().unwrap_or_default();
    assert_eq!(h.test, ["CMD-SHELL", "curl -f http://localhost"]);
    assert_eq!(
        (
            h.retries,
            h.interval.map(|d| d.seconds),
            h.start_period.map(|d| d.seconds)
        ),
        (3, Some(10), Some(60))
    );
    assert_eq!(c.mounts.len(), 3);
    assert_eq!(c.mounts[0].source, "app_data");
    assert!(c.mounts[0].read_only);
    assert_eq!(c.mounts[1].r#type, mount::Type::Bind as i32);
    assert_eq!(c.mounts[2].r#type, mount::Type::Tmpfs as i32);
    assert_eq!(c.mounts[2].tmpfs_size_bytes, 64 << 20);
    assert_eq!(c.secrets[0].secret_name, "app_pw");
    assert_eq!(
        c.secrets[0]
            .target
            .as_ref()
            .map(|t| (t.name.as_str(), t.mode)),
        Some(("pw", 0o444))
    );
    assert_eq!(
        c.secrets[1]
            .target
            .as_ref()
            .map(|t| (t.name.as_str(), t.mode)),
        Some(("other", 0o400))
    );
    assert_eq!(
        c.configs[0].target.as_ref().map(|t| t.name.as_str()),
        Some("/cfg")
    );
    let n = &task.networks[0];
    assert_eq!(
        (n.target.as_str(), n.aliases.clone()),
        ("app_front", vec!["web".to_string(), "www".to_string()])
    );
}

#[test]
fn deploy_fields() {
    let (d, _) = full();
    let web = service(&d, "app_web");
    assert!(matches!(web.mode, Some(Mode::Replicated(ref r)) if r.replicas == 4));
    let task = web.task.clone().unwrap_or_default();
    let p = task.placement.clone().unwrap_or_default();
    assert_eq!(p.constraints, ["node.role == worker"]);
    assert_eq!(p.preferences[0].spread_descriptor, "node.labels.zone");
    assert_eq!(p.max_replicas, 2);
    let r = task.resources.unwrap_or_default();
    assert_eq!(
        r.limits.map(|l| (l.nano_cpus, l.memory_bytes)),
        Some((500_000_000, 512 << 20))
    );
    assert_eq!(r.reservations.map(|l| l.memory_bytes), Some(128 << 20));
    let rp = task.restart.unwrap_or_default();
    assert_eq!(rp.condition, restart_policy::Condition::OnFailure as i32);
    assert_eq!(
        (rp.max_attempts, rp.window.map(|w| w.seconds)),
        (3, Some(30))
    );
    let u = web.update.unwrap_or_default();
    assert_eq!(u.parallelism, 2);
    assert_eq!(
        u.failure_action,
        update_config::FailureAction::Rollback as i32
    );
    assert_eq!(u.order, update_config::Order::StartFirst as i32);
    assert!((u.max_failure_ratio - 0.25).abs() < 1e-6);
    assert_eq!(u.monitor.map(|m| m.seconds), Some(10));
    let rb = web.rollback.unwrap_or_default();
    assert_eq!(
        (rb.parallelism, rb.order),
        (0, update_config::Order::StopFirst as i32)
    );
    let e = web.endpoint.clone().unwrap_or_default();
    assert_eq!(e.mode, 1);
    assert_eq!(e.ports.len(), 2);
    assert_eq!(
        (e.ports[0].published_port, e.ports[0].target_port),
        (8080, 80)
    );
    assert_eq!(e.ports[1].protocol, port_config::Protocol::Udp as i32);
    assert_eq!(
        e.ports[1].publish_mode,
        port_config::PublishMode::Host as i32
    );
}

#[test]
fn files_merge_in_order() {
    let base = "services:\n  web:\n    image: busybox:1\n    command: sleep 1\n    environment: [A=1, B=2]\n    ports: [\"80:80\"]\n";
    let over = "services:\n  web:\n    image: busybox:2\n    environment:\n      B: three\n    ports: [\"81:81\"]\n";
    let (d, _) = specs(&[("a.yml", base), ("b.yml", over)]);
    let web = service(&d, "app_web");
    let c = web
        .task
        .clone()
        .unwrap_or_default()
        .container
        .unwrap_or_default();
    assert_eq!(c.image, "busybox:2");
    assert_eq!(c.env, ["A=1", "B=three"]);
    assert_eq!(c.args, ["sleep", "1"]);
    assert_eq!(web.endpoint.clone().unwrap_or_default().ports.len(), 2);
}

#[test]
fn dot_env_and_external_objects() {
    let yaml = "services:\n  web:\n    image: busybox\n    secrets: [ext]\n    networks: [shared]\nsecrets:\n  ext:\n    external: true\nnetworks:\n  shared:\n    external:\n      name: corp_net\n";
    let (d, _) = specs(&[("compose.yml", yaml)]);
    assert_eq!(d.external_secrets, ["ext"]);
    assert_eq!(d.external_networks, ["corp_net"]);
    assert!(d.secrets.is_empty() && d.networks.is_empty());
    let web = service(&d, "app_web");
    let t = web.task.clone().unwrap_or_default();
    assert_eq!(t.networks[0].target, "corp_net");
    assert_eq!(
        t.container.unwrap_or_default().secrets[0].secret_name,
        "ext"
    );
}

#[test]
fn demo_stack_loads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/demo-stack.yml");
    let loaded = crate::compose::load::load_with_env(&[path], Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let d = desired("demo", &loaded.project);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let web = service(&d, "demo_web");
    assert!(matches!(web.mode, Some(Mode::Replicated(ref r)) if r.replicas == 3));
    let e = web.endpoint.clone().unwrap_or_default();
    assert_eq!(
        (e.ports[0].published_port, e.ports[0].target_port),
        (8080, 80)
    );
    service(&d, "demo_backend");
    assert_eq!(d.secrets.len(), 1);
}
