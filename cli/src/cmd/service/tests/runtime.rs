//! The container's runtime flags of `service create|update`: capabilities,
//! `--read-only`, `--init`, ulimits, sysctls, hosts, the log driver and
//! `--limit-pids`, with Docker's update rules; and how inspect shows them.

use serde_json::json;
use shoal_proto::objects::{ContainerSpec, ServiceSpec, TaskSpec, Ulimit};

use super::parse;
use crate::cmd::service::ServiceCommand;
use crate::cmd::service::inspect;
use crate::cmd::service::to_spec::{Lookup, create_spec, update_spec};

fn create(args: &[&str]) -> anyhow::Result<ServiceSpec> {
    let argv: Vec<&str> = ["create"].iter().chain(args).copied().collect();
    match parse(&argv).map_err(|e| anyhow::anyhow!("{e}"))? {
        ServiceCommand::Create(a) => create_spec(&a, &Lookup::default()),
        other => panic!("{other:?}"),
    }
}

fn update(spec: &mut ServiceSpec, args: &[&str]) -> anyhow::Result<()> {
    let argv: Vec<&str> = ["update"]
        .iter()
        .chain(args)
        .chain(&["web"])
        .copied()
        .collect();
    match parse(&argv).map_err(|e| anyhow::anyhow!("{e}"))? {
        ServiceCommand::Update(a) => update_spec(spec, &a, &Lookup::default()),
        other => panic!("{other:?}"),
    }
}

fn err(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

fn task(s: &ServiceSpec) -> TaskSpec {
    s.task.clone().unwrap_or_default()
}

fn container(s: &ServiceSpec) -> ContainerSpec {
    task(s).container.unwrap_or_default()
}

fn ulimit(name: &str, soft: i64, hard: i64) -> Ulimit {
    Ulimit {
        name: name.into(),
        soft,
        hard,
    }
}

#[test]
fn create_takes_every_runtime_flag() {
    let s = create(&[
        "--cap-add",
        "net_admin",
        "--cap-add",
        "CAP_SYS_TIME",
        "--cap-drop",
        "ALL",
        "--cap-drop",
        "NET_ADMIN",
        "--read-only",
        "--init",
        "--ulimit",
        "nofile=1024:2048",
        "--ulimit",
        "nproc=512",
        "--ulimit",
        "nofile=4096",
        "--sysctl",
        "net.core.somaxconn=1024",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=10m",
        "--log-opt",
        "max-file=3",
        "--limit-pids",
        "100",
        "busybox",
    ])
    .unwrap();
    let c = container(&s);
    assert_eq!(c.cap_add, ["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
    assert_eq!(
        c.cap_drop,
        ["ALL"],
        "ALL alone; an added one is not dropped"
    );
    assert!(c.read_only && c.init);
    // One per name, the last given, sorted by name.
    assert_eq!(
        c.ulimits,
        [ulimit("nofile", 4096, 4096), ulimit("nproc", 512, 512)]
    );
    assert_eq!(c.sysctls["net.core.somaxconn"], "1024");
    let t = task(&s);
    let log = t.log_driver.unwrap_or_default();
    assert_eq!(log.name, "json-file");
    assert_eq!(
        (
            log.options["max-size"].as_str(),
            log.options["max-file"].as_str()
        ),
        ("10m", "3")
    );
    assert_eq!(
        t.resources.and_then(|r| r.limits).map(|l| l.pids),
        Some(100)
    );

    let plain = create(&["busybox"]).unwrap();
    let c = container(&plain);
    assert!(!c.read_only && !c.init && c.cap_add.is_empty() && c.ulimits.is_empty());
    assert_eq!(task(&plain).log_driver, None, "the engine's default");
    assert!(!container(&create(&["--read-only=false", "--init=0", "x"]).unwrap()).read_only);
}

#[test]
fn create_refuses_bad_runtime_values() {
    for (args, want) in [
        (
            &["--ulimit", "nofiles=1", "x"][..],
            "unknown ulimit \"nofiles\"",
        ),
        (
            &["--ulimit", "nofile=9:1", "x"],
            "must not exceed the hard limit",
        ),
        (
            &["--sysctl", "net.core.somaxconn", "x"],
            "expected KEY=VALUE",
        ),
        (&["--cap-add", "NET ADMIN", "x"], "invalid capability"),
        (&["--cap-add", "RESET", "x"], "RESET is for service update"),
        (&["--limit-pids=-5", "x"], "0 (unlimited) or more"),
        (&["--limit-pids", "many", "x"], "invalid pids limit"),
        (&["--read-only=maybe", "x"], "invalid boolean"),
        (
            &["--log-opt", "max-size=1m", "x"],
            "--log-opt needs --log-driver",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "=x", "x"],
            "key is empty",
        ),
        (
            &["--mount", "type=bind,src=/a,dst=/b,volume-driver=nfs", "x"],
            "cannot mix",
        ),
    ] {
        let got = err(create(args));
        assert!(got.contains(want), "{args:?}: {got}");
    }
}

#[test]
fn update_edits_capabilities_as_docker() {
    let mut s = create(&["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "x"]).unwrap();
    // Dropping an added capability stops adding it, and drops it.
    update(&mut s, &["--cap-drop", "NET_ADMIN"]).unwrap();
    assert_eq!(container(&s).cap_add, Vec::<String>::new());
    assert_eq!(container(&s).cap_drop, ["CAP_CHOWN", "CAP_NET_ADMIN"]);
    // Adding a dropped one: no longer dropped.
    update(&mut s, &["--cap-add", "chown"]).unwrap();
    assert_eq!(container(&s).cap_add, ["CAP_CHOWN"]);
    assert_eq!(container(&s).cap_drop, ["CAP_NET_ADMIN"]);
    // Both at once: adding wins.
    update(&mut s, &["--cap-add", "SYS_TIME", "--cap-drop", "SYS_TIME"]).unwrap();
    assert_eq!(container(&s).cap_add, ["CAP_CHOWN", "CAP_SYS_TIME"]);
    // RESET forgets the list first.
    update(&mut s, &["--cap-add", "RESET", "--cap-add", "NET_RAW"]).unwrap();
    assert_eq!(container(&s).cap_add, ["CAP_NET_RAW"]);
    update(&mut s, &["--cap-drop", "RESET"]).unwrap();
    assert_eq!(container(&s).cap_drop, Vec::<String>::new());
    // Untouched without the flags.
    update(&mut s, &["--image", "y"]).unwrap();
    assert_eq!(container(&s).cap_add, ["CAP_NET_RAW"]);
}

#[test]
fn update_edits_ulimits_sysctls_and_hosts() {
    let mut s = create(&[
        "--ulimit",
        "nofile=10:20",
        "--ulimit",
        "nproc=5",
        "--sysctl",
        "net.core.somaxconn=1024",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "x",
    ])
    .unwrap();
    update(
        &mut s,
        &[
            "--ulimit-rm",
            "nproc",
            "--ulimit-add",
            "nofile=30:40",
            "--ulimit-add",
            "core=0",
            "--sysctl-rm",
            "net.ipv4.ip_forward",
            "--sysctl-add",
            "net.core.somaxconn=2048",
            "--host-add",
            "db:10.0.0.5",
            "--host-add",
            "cache=10.0.0.6",
            "--host-add",
            "db:10.0.0.7",
        ],
    )
    .unwrap();
    let c = container(&s);
    assert_eq!(c.ulimits, [ulimit("core", 0, 0), ulimit("nofile", 30, 40)]);
    assert_eq!(c.sysctls.len(), 1);
    assert_eq!(c.sysctls["net.core.somaxconn"], "2048");
    assert_eq!(c.hosts, ["10.0.0.5 db", "10.0.0.6 cache", "10.0.0.7 db"]);

    // Swarm entries may carry aliases: `name` leaves every entry, `name:ip`
    // only that address's; an entry without names goes; duplicates once.
    s.task
        .get_or_insert_with(Default::default)
        .container
        .get_or_insert_with(Default::default)
        .hosts = vec![
        "127.0.0.2 host3 host1 host2".into(),
        "127.0.0.1 host1 host4".into(),
        "127.0.0.3 host1".into(),
    ];
    update(&mut s, &["--host-rm", "host1:127.0.0.1"]).unwrap();
    assert_eq!(
        container(&s).hosts,
        [
            "127.0.0.2 host3 host1 host2",
            "127.0.0.1 host4",
            "127.0.0.3 host1"
        ]
    );
    update(
        &mut s,
        &["--host-rm", "host1", "--host-add", "host4:127.0.0.1"],
    )
    .unwrap();
    assert_eq!(
        container(&s).hosts,
        ["127.0.0.2 host3 host2", "127.0.0.1 host4"]
    );
    assert!(err(update(&mut s, &["--host-add", "db"])).contains("expected HOST:IP"));
    assert!(err(update(&mut s, &["--ulimit-add", "nofile"])).contains("NAME=SOFT"));
    assert!(err(update(&mut s, &["--sysctl-add", "x"])).contains("KEY=VALUE"));
}

#[test]
fn update_sets_flags_only_when_given() {
    let mut s = create(&[
        "--read-only",
        "--init",
        "--limit-pids",
        "50",
        "--limit-memory",
        "64M",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=1m",
        "x",
    ])
    .unwrap();
    update(&mut s, &["--image", "y"]).unwrap();
    let c = container(&s);
    assert!(c.read_only && c.init);
    update(&mut s, &["--read-only=false", "--limit-pids", "0"]).unwrap();
    let c = container(&s);
    assert!(!c.read_only && c.init);
    let limits = task(&s)
        .resources
        .and_then(|r| r.limits)
        .unwrap_or_default();
    assert_eq!((limits.pids, limits.memory_bytes), (0, 64 << 20));
    // A new driver comes with its own options only.
    update(&mut s, &["--log-driver", "syslog"]).unwrap();
    let log = task(&s).log_driver.unwrap_or_default();
    assert_eq!((log.name.as_str(), log.options.len()), ("syslog", 0));
    assert!(err(update(&mut s, &["--log-opt", "tag=x"])).contains("--log-driver"));
}

#[test]
fn service_create_takes_hosts_as_docker() {
    // `-H/--host` is the daemon's socket only before the command, as
    // Docker's; after it, `--host` is `service create`'s own.
    let s = create(&["--host", "db:10.0.0.5", "--host", "cache:10.0.0.6", "x"]).unwrap();
    let c = s.task.unwrap().container.unwrap();
    assert_eq!(c.hosts, ["10.0.0.5 db", "10.0.0.6 cache"]);
    assert!(err(create(&["--host", "no-ip", "x"])).contains("host"));
}

#[test]
fn inspect_shows_runtime_keys_in_dockers_names() {
    let mut s = create(&[
        "--name",
        "web",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "ALL",
        "--read-only",
        "--init",
        "--ulimit",
        "nofile=1024:2048",
        "--sysctl",
        "net.core.somaxconn=1024",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=10m",
        "--limit-pids",
        "100",
        "--mount",
        "type=volume,source=db,target=/db,volume-driver=local,volume-label=a=b,volume-opt=type=tmpfs,volume-nocopy",
        "busybox",
    ])
    .unwrap();
    update(&mut s, &["--host-add", "db:10.0.0.5"]).unwrap();
    let service = shoal_proto::objects::Service {
        id: "svc1".into(),
        spec: Some(s),
        ..Default::default()
    };
    let v = inspect::view(&service);
    let t = &v["Spec"]["TaskTemplate"];
    let c = &t["ContainerSpec"];
    assert_eq!(c["CapabilityAdd"], json!(["CAP_NET_ADMIN"]));
    assert_eq!(c["CapabilityDrop"], json!(["ALL"]));
    assert_eq!(c["ReadOnly"], true);
    assert_eq!(c["Init"], true);
    assert_eq!(
        c["Ulimits"],
        json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    assert_eq!(c["Sysctls"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(c["Hosts"], json!(["10.0.0.5 db"]));
    assert_eq!(
        c["Mounts"][0],
        json!({"Type": "volume", "Source": "db", "Target": "/db", "VolumeOptions": {
            "NoCopy": true, "Labels": {"a": "b"},
            "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})
    );
    assert_eq!(
        t["LogDriver"],
        json!({"Name": "json-file", "Options": {"max-size": "10m"}})
    );
    assert_eq!(t["Resources"]["Limits"], json!({"Pids": 100}));
    let plain = inspect::view(&shoal_proto::objects::Service {
        spec: Some(create(&["--mount", "type=tmpfs,target=/t", "x"]).unwrap()),
        ..Default::default()
    });
    let pc = &plain["Spec"]["TaskTemplate"]["ContainerSpec"];
    for key in [
        "CapabilityAdd",
        "ReadOnly",
        "Ulimits",
        "Sysctls",
        "Hosts",
        "Init",
    ] {
        assert!(pc.get(key).is_none(), "{key} is omitted when empty");
    }
    assert!(pc["Mounts"][0].get("VolumeOptions").is_none());
    assert!(plain["Spec"]["TaskTemplate"].get("LogDriver").is_none());

    let pretty = inspect::pretty(&service);
    for want in [
        "Capabilities:\n Add: CAP_NET_ADMIN\n Drop: ALL\n",
        " Init: true\n",
        "SysCtls:\n net.core.somaxconn: 1024\n",
        "Ulimits:\n nofile: 1024:2048\n",
        "Resources:\n Limits:\n  PIDs:\t\t100\n",
        "Log Driver:\n Name:\t\tjson-file\n LogOpts:\n  max-size:\t\t10m\n",
    ] {
        assert!(pretty.contains(want), "{want:?} not in:\n{pretty}");
    }
}
