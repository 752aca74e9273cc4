//! Golden `service ls` / `service ps` tables and the inspect JSON.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use shoal_proto::control::ServiceCounts;
use shoal_proto::objects::{
    Endpoint, GlobalService, PortConfig, ReplicatedJob, ReplicatedService, Service, Task,
    TaskState as S, UpdateStatus, port_config, service_spec::Mode, update_status,
};

use super::{service, task};
use crate::cmd::filter::{Filters, parse_filter};
use crate::cmd::service::inspect;
use crate::cmd::service::view::{self, Names};

const WEB: &str = "webid0000000aaaaaaaaaaaaa";
const AGENT: &str = "agentid00000bbbbbbbbbbbbb";
const BATCH: &str = "batchid00000ccccccccccccc";

fn fixture() -> (Vec<Service>, Vec<Task>, Names) {
    let mut web = service(
        WEB,
        "web",
        Mode::Replicated(ReplicatedService { replicas: 3 }),
    );
    web.endpoint = Some(Endpoint {
        ports: vec![PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        }],
        ..Default::default()
    });
    let agent = service(AGENT, "agent", Mode::Global(GlobalService {}));
    let batch = service(
        BATCH,
        "batch",
        Mode::ReplicatedJob(ReplicatedJob {
            max_concurrent: 5,
            total_completions: 10,
        }),
    );
    let t0 = 1_700_000_000;
    let mut failed = task(
        "tfailed00001xxxxxxxxxxxxx",
        WEB,
        1,
        "node1",
        S::Shutdown,
        S::Failed,
        t0,
    );
    if let Some(st) = failed.status.as_mut() {
        st.err = "task: non-zero exit (1): the process could not start".into();
    }
    let mut host_port = task(
        "tweb3000000300000000000000",
        WEB,
        3,
        "node2",
        S::Running,
        S::Running,
        t0 + 10,
    );
    if let Some(st) = host_port.status.as_mut() {
        st.ports = vec![PortConfig {
            target_port: 53,
            published_port: 5353,
            protocol: port_config::Protocol::Udp as i32,
            publish_mode: port_config::PublishMode::Host as i32,
            ..Default::default()
        }];
    }
    let tasks = vec![
        failed,
        task(
            "tweb1000000100000000000000",
            WEB,
            1,
            "node1",
            S::Running,
            S::Running,
            t0 + 10,
        ),
        task(
            "tweb2000000200000000000000",
            WEB,
            2,
            "node2",
            S::Running,
            S::Starting,
            t0 + 10,
        ),
        host_port,
        task(
            "tagent1aaaaa0000000000000",
            AGENT,
            0,
            "node1",
            S::Running,
            S::Running,
            t0,
        ),
        task(
            "tagent2bbbbb0000000000000",
            AGENT,
            0,
            "node2",
            S::Running,
            S::Running,
            t0,
        ),
        task(
            "tbatch1aaaaa0000000000000",
            BATCH,
            1,
            "node1",
            S::Complete,
            S::Complete,
            t0,
        ),
        task(
            "tbatch2aaaaa0000000000000",
            BATCH,
            2,
            "node1",
            S::Complete,
            S::Complete,
            t0,
        ),
        task(
            "tbatch3aaaaa0000000000000",
            BATCH,
            3,
            "node2",
            S::Complete,
            S::Complete,
            t0,
        ),
    ];
    let names = Names {
        services: [(WEB, "web"), (AGENT, "agent"), (BATCH, "batch")]
            .map(|(a, b)| (a.into(), b.into()))
            .into(),
        nodes: [("node1", "alpha"), ("node2", "beta")]
            .map(|(a, b)| (a.into(), b.into()))
            .into(),
    };
    (vec![web, agent, batch], tasks, names)
}

fn filters(list: &[&str], keys: &[&str]) -> Filters {
    Filters::new(
        list.iter().map(|f| parse_filter(f).unwrap()).collect(),
        keys,
    )
    .unwrap()
}

/// The counts the manager gives for the fixture (`ListServices` with
/// `status`): running, desired, completed.
fn counts() -> BTreeMap<String, ServiceCounts> {
    let c = |running_tasks, desired_tasks, completed_tasks| ServiceCounts {
        running_tasks,
        desired_tasks,
        completed_tasks,
    };
    BTreeMap::from([
        (AGENT.to_string(), c(2, 2, 0)),
        (BATCH.to_string(), c(0, 5, 3)),
        (WEB.to_string(), c(2, 3, 0)),
    ])
}

#[test]
fn service_ls_golden() {
    let (services, _, _) = fixture();
    let services = view::select_services(services, &Filters::default());
    let out = view::render_ls(&services, &counts(), false, None).unwrap();
    let want = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/service_ls.txt"
    ));
    assert_eq!(out, want, "\n{out}");
    let out =
        view::render_ls(&services, &counts(), false, Some("{{.Name}} {{.Replicas}}")).unwrap();
    assert_eq!(out, "agent 2/2\nbatch 0/5 (3/10 completed)\nweb 2/3\n");
    let q = view::render_ls(&services, &BTreeMap::new(), true, None).unwrap();
    assert_eq!(q, format!("{AGENT}\n{BATCH}\n{WEB}\n"));
    let only = view::select_services(
        services,
        &filters(&["mode=replicated-job"], view::LS_FILTER_KEYS),
    );
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, BATCH);
}

#[test]
fn max_per_node_is_shown() {
    let (mut services, _, _) = fixture();
    let mut web = services.remove(0);
    if let Some(p) = web.spec.as_mut().and_then(|s| s.task.as_mut()) {
        p.placement = Some(shoal_proto::objects::Placement {
            max_replicas: 1,
            ..Default::default()
        });
    }
    assert_eq!(view::replicas(&web, &counts()[WEB]), "2/3 (max 1 per node)");
}

#[test]
fn service_ps_golden() {
    let (_, tasks, names) = fixture();
    let web: Vec<Task> = tasks.into_iter().filter(|t| t.service_id == WEB).collect();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 75);
    let out = view::render_ps(&web, &names, false, false, None, now).unwrap();
    let want = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/service_ps.txt"
    ));
    assert_eq!(out, want, "\n{out}");
    let f = filters(&["desired-state=running"], view::PS_FILTER_KEYS);
    let running = view::select_tasks(web.clone(), &f, &names);
    assert_eq!(running.len(), 3);
    let f = filters(&["node=beta"], view::PS_FILTER_KEYS);
    assert_eq!(view::select_tasks(web.clone(), &f, &names).len(), 2);
    let out = view::render_ps(&web, &names, true, true, None, now).unwrap();
    assert!(
        out.starts_with("tweb1000000100000000000000\ntfailed00001xxxxxxxxxxxxx\n"),
        "{out}"
    );
    // Templates get plain names, no history marks.
    let out =
        view::render_ps(&web, &names, false, false, Some("{{.Name}} {{.Node}}"), now).unwrap();
    assert_eq!(out, "web.1 alpha\nweb.1 alpha\nweb.2 beta\nweb.3 beta\n");
}

#[test]
fn global_tasks_are_named_by_node() {
    let (_, tasks, names) = fixture();
    let agent: Vec<Task> = tasks
        .into_iter()
        .filter(|t| t.service_id == AGENT)
        .collect();
    let out = view::render_ps(&agent, &names, false, false, Some("{{.Name}}"), UNIX_EPOCH).unwrap();
    assert_eq!(out, "agent.node1\nagent.node2\n");
}

#[test]
fn inspect_is_shaped_like_dockers() {
    let (services, _, _) = fixture();
    let mut web = services[0].clone();
    web.update_status = Some(UpdateStatus {
        state: update_status::State::RollbackCompleted as i32,
        started_at: Some(super::ts(1_700_000_100)),
        completed_at: Some(super::ts(1_700_000_200)),
        message: "rollback completed".into(),
    });
    if let Some(spec) = web.spec.as_mut() {
        spec.update = Some(crate::spec::default_rollout());
        if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
            c.args = vec!["-g".into(), "daemon off;".into()];
            c.env = vec!["A=1".into()];
        }
    }
    let v = inspect::view(&web);
    assert_eq!(v["ID"], WEB);
    assert_eq!(v["Version"], json!({"Index": 7}));
    assert_eq!(v["CreatedAt"], "2023-11-14T22:13:20Z");
    assert_eq!(v["Spec"]["Name"], "web");
    assert_eq!(v["Spec"]["Mode"], json!({"Replicated": {"Replicas": 3}}));
    let c = &v["Spec"]["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["Image"], "nginx:1.25");
    assert_eq!(c["Args"], json!(["-g", "daemon off;"]));
    assert_eq!(c["Env"], json!(["A=1"]));
    assert!(c.get("Command").is_none(), "empty fields are omitted");
    assert_eq!(
        v["Spec"]["UpdateConfig"],
        json!({"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    assert_eq!(v["Spec"]["EndpointSpec"], json!({"Mode": "vip"}));
    assert_eq!(
        v["Endpoint"]["Ports"][0],
        json!({"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"})
    );
    assert_eq!(v["UpdateStatus"]["State"], "rollback_completed");
    assert_eq!(v["UpdateStatus"]["Message"], "rollback completed");
    assert!(v["UpdateStatus"]["StartedAt"].is_string());
    let pretty = inspect::pretty(&web);
    assert!(
        pretty.contains("Name:\t\tweb") && pretty.contains("Replicas:\t3"),
        "{pretty}"
    );
}
