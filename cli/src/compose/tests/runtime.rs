//! The container's runtime keys (`cap_add`, `cap_drop`, `read_only`,
//! `ulimits`, `sysctls`, `extra_hosts`, `logging`, `init`, `pids`) and
//! named volumes' `driver`, `driver_opts`, `labels` and `external`: what
//! they convert to, and one precise line for each malformed value.

use shoal_proto::objects::{ContainerSpec, Mount, TaskSpec, Ulimit};

use super::{error_of, load_files};
use crate::compose::{NAMESPACE_LABEL, desired};

const STACK: &str = r#"
services:
  web:
    image: busybox
    init: true
    read_only: true
    cap_add: [net_admin, CAP_SYS_TIME, NET_BIND_SERVICE]
    cap_drop: [ALL, NET_ADMIN]
    ulimits:
      nproc: 65535
      nofile:
        soft: 20000
        hard: 40000
    sysctls:
      net.core.somaxconn: 1024
      net.ipv4.tcp_syncookies: "0"
    extra_hosts:
      - "somehost:162.242.195.82"
      - "v6host=::1"
      - "bracket:[fe80::1]"
    logging:
      driver: json-file
      options:
        max-size: 200k
        max-file: 10
    volumes:
      - data:/data:nocopy
      - type: volume
        source: shared
        target: /shared
        volume:
          nocopy: true
      - named:/named
      - type: volume
        target: /anon
    deploy:
      resources:
        limits: {cpus: "0.5", pids: 100}
  api:
    image: busybox
    sysctls: ["net.core.somaxconn=512", "kernel.shmmax=1024"]
    extra_hosts:
      db: 10.0.0.5
      db6: ["::1", "10.0.0.6"]
    logging:
      options: {max-size: 1m}
volumes:
  data:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs, o: "size=1m"}
    labels: {backup: nightly}
  shared:
    external: true
  named:
    name: the-named
    labels: [tier=db]
"#;

fn task(name: &str) -> TaskSpec {
    let (_dir, r) = load_files(&[("compose.yml", STACK)]);
    let loaded = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings, Vec::<String>::new(), "nothing is ignored");
    desired("app", &loaded.project)
        .services
        .into_iter()
        .find(|s| s.annotations.as_ref().is_some_and(|a| a.name == name))
        .and_then(|s| s.task)
        .unwrap_or_else(|| panic!("no service {name}"))
}

fn container(name: &str) -> ContainerSpec {
    task(name).container.unwrap_or_default()
}

#[test]
fn runtime_keys_convert_as_docker_stack_deploy() {
    let c = container("app_web");
    assert!(c.init && c.read_only);
    // Normalized and effective: ALL drops alone; an added one is not dropped.
    assert_eq!(
        c.cap_add,
        ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"]
    );
    assert_eq!(c.cap_drop, ["ALL"]);
    let ulimit = |name: &str, soft, hard| Ulimit {
        name: name.into(),
        soft,
        hard,
    };
    assert_eq!(
        c.ulimits,
        [
            ulimit("nofile", 20000, 40000),
            ulimit("nproc", 65535, 65535)
        ]
    );
    assert_eq!(c.sysctls["net.core.somaxconn"], "1024");
    assert_eq!(c.sysctls["net.ipv4.tcp_syncookies"], "0");
    assert_eq!(
        c.hosts,
        ["162.242.195.82 somehost", "::1 v6host", "fe80::1 bracket"]
    );
    let t = task("app_web");
    let log = t.log_driver.clone().unwrap_or_default();
    assert_eq!(log.name, "json-file");
    assert_eq!(log.options["max-size"], "200k");
    assert_eq!(log.options["max-file"], "10");
    let limits = t.resources.and_then(|r| r.limits).unwrap_or_default();
    assert_eq!((limits.pids, limits.nano_cpus), (100, 500_000_000));

    let api = container("app_api");
    assert_eq!(api.sysctls["net.core.somaxconn"], "512");
    assert_eq!(api.sysctls["kernel.shmmax"], "1024");
    assert_eq!(api.hosts, ["10.0.0.5 db", "::1 db6", "10.0.0.6 db6"]);
    assert!(!api.read_only && api.cap_add.is_empty() && api.ulimits.is_empty());
    // Options without a driver: the engine's default driver, as in Docker.
    let log = task("app_api").log_driver.unwrap_or_default();
    assert_eq!((log.name.as_str(), log.options.len()), ("", 1));
}

#[test]
fn named_volumes_carry_their_driver_labels_and_nocopy() {
    let mounts = container("app_web").mounts;
    let by_target = |t: &str| -> Mount {
        mounts
            .iter()
            .find(|m| m.target == t)
            .cloned()
            .unwrap_or_else(|| panic!("no mount {t}"))
    };
    let data = by_target("/data");
    assert_eq!(data.source, "app_data");
    assert!(data.volume_nocopy);
    assert_eq!(data.volume_driver, "local");
    assert_eq!(data.volume_options["type"], "tmpfs");
    assert_eq!(data.volume_options["o"], "size=1m");
    assert_eq!(data.volume_labels["backup"], "nightly");
    assert_eq!(data.volume_labels[NAMESPACE_LABEL], "app");
    // External: its own name, nothing to create it with.
    let shared = by_target("/shared");
    assert_eq!(shared.source, "shared");
    assert!(shared.volume_nocopy);
    assert!(shared.volume_labels.is_empty() && shared.volume_driver.is_empty());
    // `name:` replaces the stack-scoped name; no driver declared, none set.
    let named = by_target("/named");
    assert_eq!(named.source, "the-named");
    assert_eq!(named.volume_labels["tier"], "db");
    assert_eq!(named.volume_labels[NAMESPACE_LABEL], "app");
    assert!(named.volume_driver.is_empty() && named.volume_options.is_empty());
    // Anonymous: nothing to name or label.
    let anon = by_target("/anon");
    assert!(anon.source.is_empty() && anon.volume_labels.is_empty());
}

fn check(service_body: &str, want: &str) {
    let yaml = format!("services:\n  web:\n    image: busybox\n{service_body}");
    let got = error_of(&yaml);
    assert!(!got.contains('\n'), "not one line: {got}");
    assert!(
        got.contains(want),
        "got {got:?}, want it to contain {want:?}"
    );
}

#[test]
fn malformed_runtime_keys_name_file_line_and_key() {
    check(
        "    ulimits:\n      nofiles: 10\n",
        "compose.yml:5: services.web.ulimits.nofiles: unknown ulimit \"nofiles\"",
    );
    check(
        "    ulimits:\n      nofile: {soft: 20, hard: 10}\n",
        "compose.yml:5: services.web.ulimits.nofile: the soft limit must not exceed the hard limit: 20 > 10",
    );
    check(
        "    ulimits:\n      nofile: {soft: 20}\n",
        "services.web.ulimits.nofile: a ulimit mapping needs both `soft` and `hard`",
    );
    check(
        "    ulimits:\n      nofile: {soft: 1, hard: 2, max: 3}\n",
        "Additional property max is not allowed",
    );
    check(
        "    ulimits:\n      nofile: lots\n",
        "compose.yml:5: services.web.ulimits.nofile: invalid type: string \"lots\", expected an integer",
    );
    check(
        "    sysctls:\n      - net.core.somaxconn\n",
        "compose.yml:5: services.web.sysctls[0]: invalid sysctl \"net.core.somaxconn\": expected KEY=VALUE",
    );
    check(
        "    sysctls:\n      \"net core\": 1\n",
        "compose.yml:5: services.web.sysctls.net core: \"net core\" is not a kernel parameter name",
    );
    check(
        "    sysctls: net.core.somaxconn=1\n",
        "compose.yml:4: services.web.sysctls: invalid type: string",
    );
    check(
        "    extra_hosts:\n      - \"db:10.0.0.300\"\n",
        "compose.yml:5: services.web.extra_hosts[0]: invalid host \"db:10.0.0.300\": \"10.0.0.300\" is not an IP address",
    );
    check(
        "    extra_hosts:\n      - db\n",
        "compose.yml:5: services.web.extra_hosts[0]: invalid host \"db\": expected HOST:IP",
    );
    check(
        "    extra_hosts:\n      db: nowhere\n",
        "compose.yml:5: services.web.extra_hosts.db: invalid host \"db=nowhere\"",
    );
    check(
        "    cap_add: [\"NET ADMIN\"]\n",
        "compose.yml:4: services.web.cap_add[0]: invalid capability \"NET ADMIN\"",
    );
    check(
        "    cap_drop:\n      - RESET\n",
        "compose.yml:5: services.web.cap_drop[0]: RESET is for `service update --cap-add`",
    );
    check(
        "    read_only: sometimes\n",
        "compose.yml:4: services.web.read_only: invalid type: string \"sometimes\", expected a boolean",
    );
    check(
        "    logging:\n      driver: json-file\n      opts: {}\n",
        "compose.yml:6: services.web.logging: Additional property opts is not allowed",
    );
    check(
        "    logging:\n      options: [max-size]\n      driver: [syslog]\n",
        "compose.yml:6: services.web.logging.driver: invalid type: a sequence, expected a string",
    );
    check(
        "    deploy:\n      resources:\n        reservations: {pids: 10}\n",
        "services.web.deploy.resources.reservations.pids: pids can only be limited",
    );
    check(
        "    deploy:\n      resources:\n        limits: {pids: -1}\n",
        "services.web.deploy.resources.limits.pids: -1 is negative",
    );
}

#[test]
fn volume_options_need_a_volume() {
    check(
        "    volumes:\n      - /srv:/srv:nocopy\n",
        "compose.yml:5: services.web.volumes[0]: volume options are incompatible with type bind",
    );
    check(
        "    volumes:\n      - type: tmpfs\n        target: /t\n        volume: {nocopy: true}\n",
        "services.web.volumes[0]: volume options are incompatible with type tmpfs",
    );
    check(
        "    volumes:\n      - type: volume\n        source: v\n        target: /t\n        volume: {subpath: a}\nvolumes:\n  v: {}\n",
        "services.web.volumes[0].volume.subpath: volume subpaths are not supported",
    );
}
