use serde_json::json;
use shoal_proto::objects::{
    Endpoint, JobStatus, Meta, NetworkAttachment, PortConfig, Service, ServiceSpec, Task,
    TaskState, UpdateStatus, VirtualIp, mount, restart_policy, service_spec::Mode, update_status,
};

use super::*;
use crate::docker_api::convert::task::{docker_state, state_from_name, task_json, task_to_docker};

/// What `docker service create --name web --replicas 3 -p 8080:80 --env A=1
/// --mount type=volume,source=data,target=/data --secret s --health-cmd
/// "wget -q localhost" --restart-condition on-failure --update-parallelism 2
/// --constraint node.role==worker nginx` sends (Docker CLI 28).
fn cli_create_body() -> serde_json::Value {
    json!({
        "Name": "web",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:latest@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
                "Env": ["A=1"],
                "Init": false,
                "Mounts": [{ "Type": "volume", "Source": "data", "Target": "/data" }],
                "Healthcheck": { "Test": ["CMD-SHELL", "wget -q localhost"] },
                "DNSConfig": {},
                "Secrets": [{
                    "File": { "Name": "s", "UID": "0", "GID": "0", "Mode": 292 },
                    "SecretID": "q0tdbgt2b6bfmw3k1gn4xd0mz",
                    "SecretName": "s"
                }],
                "Isolation": "default"
            },
            "Resources": { "Limits": {}, "Reservations": {} },
            "RestartPolicy": { "Condition": "on-failure", "Delay": 5000000000u64, "MaxAttempts": 0 },
            "Placement": { "Constraints": ["node.role==worker"] },
            "ForceUpdate": 0
        },
        "Mode": { "Replicated": { "Replicas": 3 } },
        "UpdateConfig": {
            "Parallelism": 2,
            "FailureAction": "pause",
            "Monitor": 5000000000u64,
            "MaxFailureRatio": 0,
            "Order": "stop-first"
        },
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [{ "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress" }]
        }
    })
}

fn from_json(v: &serde_json::Value) -> Result<ServiceSpec, String> {
    spec_from_docker(parse_spec(v.to_string().as_bytes())?, None)
}

#[test]
fn the_docker_cli_create_body_is_understood() {
    let spec = from_json(&cli_create_body()).unwrap();
    assert_eq!(spec.annotations.as_ref().unwrap().name, "web");
    assert!(matches!(
        spec.mode,
        Some(Mode::Replicated(ReplicatedService { replicas: 3 }))
    ));
    let task = spec.task.as_ref().unwrap();
    let c = task.container.as_ref().unwrap();
    assert_eq!(c.env, ["A=1"]);
    assert_eq!(c.mounts[0].r#type(), mount::Type::Volume);
    assert_eq!(
        (c.mounts[0].source.as_str(), c.mounts[0].target.as_str()),
        ("data", "/data")
    );
    let secret = &c.secrets[0];
    assert_eq!(
        (secret.secret_id.as_str(), secret.secret_name.as_str()),
        ("q0tdbgt2b6bfmw3k1gn4xd0mz", "s")
    );
    assert_eq!(secret.target.as_ref().unwrap().mode, 0o444);
    // `Healthcheck`, as Go spells it, is read.
    assert_eq!(
        c.healthcheck.as_ref().unwrap().test,
        ["CMD-SHELL", "wget -q localhost"]
    );
    let restart = task.restart.as_ref().unwrap();
    assert_eq!(restart.condition(), restart_policy::Condition::OnFailure);
    assert_eq!(restart.delay.unwrap().seconds, 5);
    assert_eq!(
        task.placement.as_ref().unwrap().constraints,
        ["node.role==worker"]
    );
    let update = spec.update.as_ref().unwrap();
    assert_eq!(
        (update.parallelism, update.monitor.unwrap().seconds),
        (2, 5)
    );
    let port = &spec.endpoint.as_ref().unwrap().ports[0];
    assert_eq!((port.published_port, port.target_port), (8080, 80));

    let shown = serde_json::to_value(spec_to_docker(&spec)).unwrap();
    assert_eq!(
        shown["TaskTemplate"]["ContainerSpec"]["HealthCheck"]["Test"][0],
        "CMD-SHELL"
    );
    assert_eq!(
        shown["TaskTemplate"]["RestartPolicy"]["Condition"],
        "on-failure"
    );
    assert_eq!(shown["Mode"]["Replicated"]["Replicas"], 3);
    assert_eq!(shown["EndpointSpec"]["Ports"][0]["PublishedPort"], 8080);
    // What `docker service scale` sends back is the same spec: no rollout.
    assert_eq!(spec_from_docker(spec_to_docker(&spec), None).unwrap(), spec);
}

/// Every field Shoal keeps, in the form Shoal shows it.
fn full_spec() -> serde_json::Value {
    let file = |name: &str| json!({ "Name": name, "UID": "1000", "GID": "1001", "Mode": 256 });
    json!({
        "Name": "api",
        "Labels": { "tier": "back" },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "registry.local/api:2", "Labels": { "c": "1" },
                "Command": ["/api"], "Args": ["--port", "80"], "Hostname": "api-host",
                "Env": ["A=1"], "Dir": "/srv", "User": "app", "TTY": true, "ReadOnly": true,
                "Mounts": [
                    { "Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": true,
                      "VolumeOptions": { "NoCopy": true, "Labels": { "v": "1" },
                                         "DriverConfig": { "Name": "local", "Options": { "o": "bind" } } } },
                    { "Type": "bind", "Source": "/etc/app", "Target": "/etc/app" },
                    { "Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": { "SizeBytes": 1048576, "Mode": 1023 } }
                ],
                "StopSignal": "SIGINT", "StopGracePeriod": 20000000000u64,
                "HealthCheck": { "Test": ["CMD", "true"], "Interval": 1000000000, "Timeout": 2000000000,
                                 "Retries": 3, "StartPeriod": 4000000000u64 },
                "Hosts": ["10.0.0.5 db.local db"],
                "Secrets": [{ "File": file("s"), "SecretID": "sid", "SecretName": "s" }],
                "Configs": [{ "File": file("/c"), "ConfigID": "cid", "ConfigName": "c" }],
                "Init": true,
                "Sysctls": { "net.core.somaxconn": "1024" },
                "CapabilityAdd": ["CAP_NET_ADMIN"], "CapabilityDrop": ["CAP_MKNOD"],
                "Ulimits": [{ "Name": "nofile", "Soft": 1024, "Hard": 2048 }]
            },
            "Resources": {
                "Limits": { "NanoCPUs": 500000000, "MemoryBytes": 268435456, "Pids": 100 },
                "Reservations": { "NanoCPUs": 250000000, "MemoryBytes": 134217728 }
            },
            "RestartPolicy": { "Condition": "any", "Delay": 1000000000, "MaxAttempts": 3, "Window": 60000000000u64 },
            "Placement": {
                "Constraints": ["node.labels.zone==a"],
                "Preferences": [{ "Spread": { "SpreadDescriptor": "node.labels.rack" } }],
                "MaxReplicas": 2,
                "Platforms": [{ "Architecture": "amd64", "OS": "linux" }]
            },
            "ForceUpdate": 2,
            "Runtime": "container",
            "Networks": [{ "Target": "backend", "Aliases": ["api"] }],
            "LogDriver": { "Name": "json-file", "Options": { "max-size": "10m" } }
        },
        "Mode": { "Replicated": { "Replicas": 3 } },
        "UpdateConfig": { "Parallelism": 2, "Delay": 1000000000, "FailureAction": "rollback",
                          "Monitor": 10000000000u64, "MaxFailureRatio": 0.2, "Order": "start-first" },
        "RollbackConfig": { "Parallelism": 1, "Delay": 0, "FailureAction": "continue",
                            "Monitor": 5000000000u64, "MaxFailureRatio": 0.0, "Order": "stop-first" },
        "EndpointSpec": { "Mode": "vip", "Ports": [
            { "Name": "dns", "Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host" }
        ] }
    })
}

#[test]
fn every_supported_field_round_trips() {
    let body = full_spec();
    let spec = from_json(&body).unwrap();
    assert_eq!(serde_json::to_value(spec_to_docker(&spec)).unwrap(), body);
    assert_eq!(spec_from_docker(spec_to_docker(&spec), None).unwrap(), spec);
}

#[test]
fn credentials_go_with_the_container_and_are_never_shown() {
    let auth = RegistryAuth {
        server: "registry.local".into(),
        username: "u".into(),
        password: "p".into(),
    };
    let spec = spec_from_docker(
        parse_spec(full_spec().to_string().as_bytes()).unwrap(),
        Some(auth.clone()),
    )
    .unwrap();
    let container = spec.task.as_ref().unwrap().container.as_ref().unwrap();
    assert_eq!(container.registry_auth, Some(auth));
    assert!(
        !serde_json::to_string(&spec_to_docker(&spec))
            .unwrap()
            .contains("\"p\"")
    );
}

#[test]
fn jobs_take_dockers_defaults() {
    let job = |mode: serde_json::Value| {
        from_json(&json!({ "Name": "j", "TaskTemplate": { "ContainerSpec": { "Image": "busybox" } }, "Mode": mode }))
            .unwrap()
    };
    let global = job(json!({ "GlobalJob": {} }));
    assert_eq!(global.mode, Some(Mode::GlobalJob(GlobalJob {})));
    let shown = serde_json::to_value(spec_to_docker(&global)).unwrap();
    assert_eq!(shown["Mode"], json!({ "GlobalJob": {} }));
    let replicated = |j: &ServiceSpec| match j.mode {
        Some(Mode::ReplicatedJob(r)) => (r.max_concurrent, r.total_completions),
        _ => panic!("not a replicated job"),
    };
    assert_eq!(replicated(&job(json!({ "ReplicatedJob": {} }))), (1, 1));
    assert_eq!(
        replicated(&job(json!({ "ReplicatedJob": { "MaxConcurrent": 3 } }))),
        (3, 3)
    );
    let unset = from_json(&json!({ "Name": "r" })).unwrap();
    assert_eq!(
        unset.mode,
        Some(Mode::Replicated(ReplicatedService { replicas: 1 }))
    );
    assert!(from_json(&json!({ "Mode": { "Global": {}, "GlobalJob": {} } })).is_err());
}

#[test]
fn service_level_networks_move_into_the_template() {
    let spec = from_json(&json!({ "Name": "n", "Networks": [{ "Target": "front" }] })).unwrap();
    assert_eq!(spec.task.unwrap().networks[0].target, "front");
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let with = |pointer: &str, value: serde_json::Value| {
        let mut body = cli_create_body();
        *body.pointer_mut(pointer).unwrap() = value;
        from_json(&body).unwrap_err()
    };
    let err = with("/TaskTemplate/RestartPolicy/Condition", json!("x"));
    assert_eq!(
        err,
        r#"invalid TaskTemplate.RestartPolicy.Condition "x": expected one of ["none", "on-failure", "any"]"#
    );
    let err = with("/EndpointSpec/Ports/0/Protocol", json!("icmp"));
    assert!(err.contains("EndpointSpec.Ports.*.Protocol"), "{err}");
    let err = with("/UpdateConfig/Order", json!("random"));
    assert!(err.contains("UpdateConfig.Order"), "{err}");
    let err = with(
        "/TaskTemplate/ContainerSpec/Secrets/0/File/UID",
        json!("root"),
    );
    assert!(err.contains("Secrets[0].File.UID"), "{err}");
    let err = with("/Mode/Replicated/Replicas", json!(-1));
    assert!(err.contains("Mode.Replicated.Replicas"), "{err}");
    let err = with("/EndpointSpec/Ports/0/PublishedPort", json!(70000));
    assert!(err.contains("EndpointSpec.Ports[0].PublishedPort"), "{err}");
}

#[test]
fn what_shoal_cannot_do_is_refused_and_empty_forms_pass() {
    let with = |pointer: &str, value: serde_json::Value| {
        let mut body = cli_create_body();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        body.pointer_mut(parent).unwrap()[key] = value;
        from_json(&body)
    };
    for (pointer, value) in [
        (
            "/TaskTemplate/ContainerSpec/DNSConfig",
            json!({ "Nameservers": ["1.1.1.1"] }),
        ),
        (
            "/TaskTemplate/ContainerSpec/Privileges",
            json!({ "Seccomp": { "Mode": "unconfined" } }),
        ),
        ("/TaskTemplate/ContainerSpec/Groups", json!(["wheel"])),
        ("/TaskTemplate/ContainerSpec/Mounts/0/Type", json!("npipe")),
        ("/TaskTemplate/Runtime", json!("plugin")),
        (
            "/TaskTemplate/Resources/Reservations/GenericResources",
            json!([{ "DiscreteResourceSpec": { "Kind": "gpu", "Value": 1 } }]),
        ),
    ] {
        let err = with(pointer, value).unwrap_err();
        assert!(err.contains("not supported by Shoal"), "{pointer}: {err}");
    }
    for (pointer, value) in [
        ("/TaskTemplate/ContainerSpec/Privileges", json!(null)),
        (
            "/TaskTemplate/ContainerSpec/Privileges",
            json!({ "NoNewPrivileges": false, "AppArmor": { "Mode": "default" } }),
        ),
        ("/TaskTemplate/ContainerSpec/OomScoreAdj", json!(0)),
        ("/TaskTemplate/ContainerSpec/Groups", json!([])),
        ("/TaskTemplate/Runtime", json!("container")),
        ("/TaskTemplate/NetworkAttachmentSpec", json!({})),
    ] {
        assert!(with(pointer, value).is_ok(), "{pointer}");
    }
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

#[test]
fn a_service_shows_its_endpoint_update_and_previous_spec() {
    let spec = from_json(&cli_create_body()).unwrap();
    let port = PortConfig {
        target_port: 80,
        published_port: 30001,
        ..Default::default()
    };
    let service = Service {
        id: "svc1".into(),
        meta: Some(Meta {
            version: 7,
            created_at: ts(1_800_000_000),
            updated_at: ts(1_800_000_060),
        }),
        previous_spec: Some(spec.clone()),
        endpoint: Some(Endpoint {
            spec: spec.endpoint.clone(),
            ports: vec![port],
            virtual_ips: vec![VirtualIp {
                network_id: "ingress1".into(),
                addr: "10.0.0.3/24".into(),
            }],
        }),
        update_status: Some(UpdateStatus {
            state: update_status::State::Completed as i32,
            started_at: ts(1_800_000_010),
            completed_at: ts(1_800_000_050),
            message: "update completed".into(),
        }),
        spec: Some(spec),
        job_status: None,
    };
    let v = service_json(&service, None);
    assert_eq!(v["ID"], "svc1");
    assert_eq!(v["Version"]["Index"], 7);
    assert_eq!(v["CreatedAt"], "2027-01-15T08:00:00Z");
    assert_eq!(v["Endpoint"]["Ports"][0]["PublishedPort"], 30001);
    assert_eq!(v["Endpoint"]["VirtualIPs"][0]["Addr"], "10.0.0.3/24");
    assert_eq!(v["UpdateStatus"]["State"], "completed");
    assert_eq!(v["PreviousSpec"]["Name"], "web");
    assert!(v.get("JobStatus").is_none() && v.get("ServiceStatus").is_none());

    let mut job = service.clone();
    job.spec.as_mut().unwrap().mode = Some(Mode::GlobalJob(GlobalJob {}));
    job.job_status = Some(JobStatus {
        job_iteration: 4,
        last_execution: ts(1_800_000_000),
    });
    job.update_status = Some(UpdateStatus::default());
    let v = serde_json::to_value(service_to_docker(&job, None)).unwrap();
    assert_eq!(v["JobStatus"]["JobIteration"]["Index"], 4);
    assert!(
        v.get("UpdateStatus").is_none(),
        "an unknown update state is not shown"
    );
}

#[test]
fn a_task_shows_lower_case_states() {
    let spec = from_json(&cli_create_body()).unwrap();
    let task = Task {
        id: "t1".into(),
        meta: Some(Meta {
            version: 3,
            created_at: ts(1_800_000_000),
            updated_at: ts(1_800_000_001),
        }),
        spec: spec.task.clone(),
        service_id: "svc1".into(),
        slot: 2,
        node_id: "node1".into(),
        status: Some(shoal_proto::objects::TaskStatus {
            timestamp: ts(1_800_000_001),
            state: TaskState::Running as i32,
            message: "started".into(),
            container: Some(shoal_proto::objects::ContainerStatus {
                container_id: "c0ffee".into(),
                pid: 42,
                exit_code: 0,
            }),
            ..Default::default()
        }),
        desired_state: TaskState::Running as i32,
        networks: vec![NetworkAttachment {
            network: Some(shoal_proto::objects::Network {
                id: "net1".into(),
                ..Default::default()
            }),
            addresses: vec!["10.0.1.5/24".into()],
            aliases: Vec::new(),
        }],
        ..Default::default()
    };
    let v = serde_json::to_value(task_to_docker(&task)).unwrap();
    assert_eq!(v["Status"]["State"], "running");
    assert_eq!(v["DesiredState"], "running");
    assert_eq!(
        v["Status"]["ContainerStatus"],
        json!({ "ContainerID": "c0ffee", "PID": 42 })
    );
    assert_eq!(
        (v["Slot"].clone(), v["NodeID"].clone()),
        (json!(2), json!("node1"))
    );
    assert_eq!(v["Spec"]["ContainerSpec"]["Env"], json!(["A=1"]));
    assert!(v.get("Name").is_none());

    let mut shut = task.clone();
    shut.slot = 0;
    shut.status.as_mut().unwrap().set_state(TaskState::Complete);
    shut.set_desired_state(TaskState::Shutdown);
    let v = task_json(&shut);
    assert_eq!(
        (v["Status"]["State"].as_str(), v["DesiredState"].as_str()),
        (Some("complete"), Some("shutdown"))
    );
    assert!(v.get("Slot").is_none(), "global tasks have no slot");
    assert_eq!(v["NetworksAttachments"][0]["Network"]["ID"], "net1");
    assert_eq!(v["NetworksAttachments"][0]["Addresses"][0], "10.0.1.5/24");
}

#[test]
fn every_state_has_its_docker_name_both_ways() {
    for state in (0..=1000).filter_map(|n| TaskState::try_from(n).ok()) {
        let name = state.docker_name();
        assert_eq!(state_from_name(name), Some(state));
        assert_eq!(docker_state(state).to_string(), name);
    }
    assert_eq!(state_from_name("Running"), Some(TaskState::Running));
    assert_eq!(state_from_name("allocated"), None);
    assert_eq!(state_from_name("task_state_running"), None);
}
