//! `service inspect`: JSON shaped like Docker's (`Spec.TaskTemplate...`,
//! durations in nanoseconds, enums as Docker's lower-case words, empty
//! fields left out as Go's `omitempty` does), and `--pretty`.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use shoal_proto::objects::{
    ContainerSpec, EndpointSpec, PortConfig, ResourceRequirements, Resources, Service, ServiceSpec,
    TaskSpec, UpdateConfig, endpoint_spec, mount, port_config, restart_policy, service_spec::Mode,
    update_config, update_status,
};

use crate::output::time::rfc3339;
use crate::spec::nanos;

/// Inserts `v` under `k` unless it is empty (`omitempty`).
fn put(m: &mut Map<String, Value>, k: &str, v: Value) {
    let empty = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
    };
    if !empty {
        m.insert(k.to_string(), v);
    }
}

fn dur(d: Option<&prost_types::Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(nanos(d)))
}

/// The inspect object of one service.
pub fn view(s: &Service) -> Value {
    let meta = s.meta.unwrap_or_default();
    let mut m = Map::new();
    m.insert("ID".into(), json!(s.id));
    m.insert("Version".into(), json!({"Index": meta.version}));
    m.insert("CreatedAt".into(), json!(rfc3339(meta.created_at.as_ref())));
    m.insert("UpdatedAt".into(), json!(rfc3339(meta.updated_at.as_ref())));
    m.insert(
        "Spec".into(),
        spec_view(&s.spec.clone().unwrap_or_default()),
    );
    if let Some(p) = &s.previous_spec {
        m.insert("PreviousSpec".into(), spec_view(p));
    }
    if let Some(e) = &s.endpoint {
        let mut ep = Map::new();
        ep.insert("Spec".into(), endpoint_view(e.spec.as_ref()));
        put(
            &mut ep,
            "Ports",
            json!(e.ports.iter().map(port_view).collect::<Vec<_>>()),
        );
        let vips: Vec<Value> = e
            .virtual_ips
            .iter()
            .map(|v| json!({"NetworkID": v.network_id, "Addr": v.addr}))
            .collect();
        put(&mut ep, "VirtualIPs", json!(vips));
        m.insert("Endpoint".into(), Value::Object(ep));
    }
    if let Some(u) = &s.update_status
        && u.state() != update_status::State::Unknown
    {
        let mut us = Map::new();
        us.insert("State".into(), json!(update_state_word(u.state())));
        if u.started_at.is_some() {
            us.insert("StartedAt".into(), json!(rfc3339(u.started_at.as_ref())));
        }
        if u.completed_at.is_some() {
            us.insert(
                "CompletedAt".into(),
                json!(rfc3339(u.completed_at.as_ref())),
            );
        }
        us.insert("Message".into(), json!(u.message));
        m.insert("UpdateStatus".into(), Value::Object(us));
    }
    Value::Object(m)
}

/// `updating`, `paused`, `completed`, `rollback_started`, ...
pub fn update_state_word(s: update_status::State) -> &'static str {
    use update_status::State::*;
    match s {
        Unknown => "",
        Updating => "updating",
        Paused => "paused",
        Completed => "completed",
        RollbackStarted => "rollback_started",
        RollbackPaused => "rollback_paused",
        RollbackCompleted => "rollback_completed",
    }
}

fn spec_view(spec: &ServiceSpec) -> Value {
    let mut m = Map::new();
    let ann = spec.annotations.clone().unwrap_or_default();
    m.insert("Name".into(), json!(ann.name));
    m.insert("Labels".into(), json!(ann.labels));
    m.insert(
        "TaskTemplate".into(),
        task_view(&spec.task.clone().unwrap_or_default()),
    );
    let mode = match &spec.mode {
        Some(Mode::Replicated(r)) => json!({"Replicated": {"Replicas": r.replicas}}),
        Some(Mode::Global(_)) => json!({"Global": {}}),
        Some(Mode::ReplicatedJob(j)) => {
            json!({"ReplicatedJob": {"MaxConcurrent": j.max_concurrent, "TotalCompletions": j.total_completions}})
        }
        Some(Mode::GlobalJob(_)) => json!({"GlobalJob": {}}),
        None => json!({}),
    };
    m.insert("Mode".into(), mode);
    if let Some(u) = &spec.update {
        m.insert("UpdateConfig".into(), rollout_view(u));
    }
    if let Some(u) = &spec.rollback {
        m.insert("RollbackConfig".into(), rollout_view(u));
    }
    let nets: Vec<Value> = spec
        .networks
        .iter()
        .map(|n| json!({"Target": n.target, "Aliases": n.aliases}))
        .collect();
    put(&mut m, "Networks", json!(nets));
    m.insert("EndpointSpec".into(), endpoint_view(spec.endpoint.as_ref()));
    Value::Object(m)
}

fn task_view(t: &TaskSpec) -> Value {
    let mut m = Map::new();
    m.insert(
        "ContainerSpec".into(),
        container_view(&t.container.clone().unwrap_or_default()),
    );
    m.insert(
        "Resources".into(),
        resources_view(&t.resources.unwrap_or_default()),
    );
    if let Some(r) = &t.restart {
        let mut rp = Map::new();
        let cond = match r.condition() {
            restart_policy::Condition::Any => "any",
            restart_policy::Condition::OnFailure => "on-failure",
            restart_policy::Condition::None => "none",
        };
        rp.insert("Condition".into(), json!(cond));
        put(&mut rp, "Delay", dur(r.delay.as_ref()));
        rp.insert("MaxAttempts".into(), json!(r.max_attempts));
        put(&mut rp, "Window", dur(r.window.as_ref()));
        m.insert("RestartPolicy".into(), Value::Object(rp));
    }
    let p = t.placement.clone().unwrap_or_default();
    let mut pm = Map::new();
    put(&mut pm, "Constraints", json!(p.constraints));
    let prefs: Vec<Value> = p
        .preferences
        .iter()
        .map(|x| json!({"Spread": {"SpreadDescriptor": x.spread_descriptor}}))
        .collect();
    put(&mut pm, "Preferences", json!(prefs));
    put(&mut pm, "MaxReplicas", json!(p.max_replicas));
    m.insert("Placement".into(), Value::Object(pm));
    let nets: Vec<Value> = t
        .networks
        .iter()
        .map(|n| {
            let mut a = Map::new();
            a.insert("Target".into(), json!(n.target));
            put(&mut a, "Aliases", json!(n.aliases));
            Value::Object(a)
        })
        .collect();
    put(&mut m, "Networks", json!(nets));
    if let Some(d) = &t.log_driver {
        let mut o = Map::new();
        put(&mut o, "Name", json!(d.name));
        put(&mut o, "Options", json!(d.options));
        m.insert("LogDriver".into(), Value::Object(o));
    }
    m.insert("ForceUpdate".into(), json!(t.force_update));
    m.insert("Runtime".into(), json!("container"));
    Value::Object(m)
}

fn container_view(c: &ContainerSpec) -> Value {
    let mut m = Map::new();
    m.insert("Image".into(), json!(c.image));
    put(&mut m, "Labels", json!(c.labels));
    put(&mut m, "Command", json!(c.command));
    put(&mut m, "Args", json!(c.args));
    put(&mut m, "Hostname", json!(c.hostname));
    put(&mut m, "Env", json!(c.env));
    put(&mut m, "Dir", json!(c.dir));
    put(&mut m, "User", json!(c.user));
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|x| {
            let kind = match x.r#type() {
                mount::Type::Volume => "volume",
                mount::Type::Bind => "bind",
                mount::Type::Tmpfs => "tmpfs",
            };
            let mut o = Map::new();
            o.insert("Type".into(), json!(kind));
            put(&mut o, "Source", json!(x.source));
            o.insert("Target".into(), json!(x.target));
            put(&mut o, "ReadOnly", json!(x.read_only));
            let mut vo = Map::new();
            put(&mut vo, "NoCopy", json!(x.volume_nocopy));
            put(&mut vo, "Labels", json!(x.volume_labels));
            let mut driver = Map::new();
            put(&mut driver, "Name", json!(x.volume_driver));
            put(&mut driver, "Options", json!(x.volume_options));
            put(&mut vo, "DriverConfig", Value::Object(driver));
            put(&mut o, "VolumeOptions", Value::Object(vo));
            Value::Object(o)
        })
        .collect();
    put(&mut m, "Mounts", json!(mounts));
    put(&mut m, "StopGracePeriod", dur(c.stop_grace_period.as_ref()));
    put(&mut m, "StopSignal", json!(c.stop_signal));
    if let Some(h) = &c.healthcheck {
        let mut o = Map::new();
        put(&mut o, "Test", json!(h.test));
        put(&mut o, "Interval", dur(h.interval.as_ref()));
        put(&mut o, "Timeout", dur(h.timeout.as_ref()));
        put(&mut o, "StartPeriod", dur(h.start_period.as_ref()));
        put(&mut o, "Retries", json!(h.retries));
        m.insert("Healthcheck".into(), Value::Object(o));
    }
    let file = |t: &Option<shoal_proto::objects::FileTarget>| {
        let t = t.clone().unwrap_or_default();
        json!({"Name": t.name, "UID": t.uid.to_string(), "GID": t.gid.to_string(), "Mode": t.mode})
    };
    let secrets: Vec<Value> = c
        .secrets
        .iter()
        .map(|s| json!({"File": file(&s.target), "SecretID": s.secret_id, "SecretName": s.secret_name}))
        .collect();
    put(&mut m, "Secrets", json!(secrets));
    let configs: Vec<Value> = c
        .configs
        .iter()
        .map(|s| json!({"File": file(&s.target), "ConfigID": s.config_id, "ConfigName": s.config_name}))
        .collect();
    put(&mut m, "Configs", json!(configs));
    put(&mut m, "Init", json!(c.init));
    put(&mut m, "TTY", json!(c.tty));
    put(&mut m, "ReadOnly", json!(c.read_only));
    put(&mut m, "Hosts", json!(c.hosts));
    put(&mut m, "Sysctls", json!(c.sysctls));
    put(&mut m, "CapabilityAdd", json!(c.cap_add));
    put(&mut m, "CapabilityDrop", json!(c.cap_drop));
    let ulimits: Vec<Value> = c
        .ulimits
        .iter()
        .map(|u| json!({"Name": u.name, "Hard": u.hard, "Soft": u.soft}))
        .collect();
    put(&mut m, "Ulimits", json!(ulimits));
    m.insert("Isolation".into(), json!("default"));
    Value::Object(m)
}

fn resources_view(r: &ResourceRequirements) -> Value {
    let one = |x: &Option<Resources>| {
        let x = x.unwrap_or_default();
        let mut o = Map::new();
        put(&mut o, "NanoCPUs", json!(x.nano_cpus));
        put(&mut o, "MemoryBytes", json!(x.memory_bytes));
        put(&mut o, "Pids", json!(x.pids));
        Value::Object(o)
    };
    let mut m = Map::new();
    put(&mut m, "Limits", one(&r.limits));
    put(&mut m, "Reservations", one(&r.reservations));
    Value::Object(m)
}

fn rollout_view(u: &UpdateConfig) -> Value {
    let action = match u.failure_action() {
        update_config::FailureAction::Pause => "pause",
        update_config::FailureAction::Continue => "continue",
        update_config::FailureAction::Rollback => "rollback",
    };
    let order = match u.order() {
        update_config::Order::StopFirst => "stop-first",
        update_config::Order::StartFirst => "start-first",
    };
    let mut m = Map::new();
    m.insert("Parallelism".into(), json!(u.parallelism));
    put(&mut m, "Delay", dur(u.delay.as_ref()));
    m.insert("FailureAction".into(), json!(action));
    put(&mut m, "Monitor", dur(u.monitor.as_ref()));
    m.insert("MaxFailureRatio".into(), json!(u.max_failure_ratio));
    m.insert("Order".into(), json!(order));
    Value::Object(m)
}

fn endpoint_view(e: Option<&EndpointSpec>) -> Value {
    let e = e.cloned().unwrap_or_default();
    let mode = match e.mode() {
        endpoint_spec::ResolutionMode::Vip => "vip",
        endpoint_spec::ResolutionMode::Dnsrr => "dnsrr",
    };
    let mut m = Map::new();
    m.insert("Mode".into(), json!(mode));
    put(
        &mut m,
        "Ports",
        json!(e.ports.iter().map(port_view).collect::<Vec<_>>()),
    );
    Value::Object(m)
}

fn port_view(p: &PortConfig) -> Value {
    let mut m = Map::new();
    put(&mut m, "Name", json!(p.name));
    let proto = match p.protocol() {
        port_config::Protocol::Tcp => "tcp",
        port_config::Protocol::Udp => "udp",
        port_config::Protocol::Sctp => "sctp",
    };
    m.insert("Protocol".into(), json!(proto));
    m.insert("TargetPort".into(), json!(p.target_port));
    put(&mut m, "PublishedPort", json!(p.published_port));
    let mode = match p.publish_mode() {
        port_config::PublishMode::Ingress => "ingress",
        port_config::PublishMode::Host => "host",
    };
    m.insert("PublishMode".into(), json!(mode));
    Value::Object(m)
}

/// `service inspect --pretty`, as Docker's (the fields people read).
pub fn pretty(s: &Service) -> String {
    let v = view(s);
    let spec = &v["Spec"];
    let c = &spec["TaskTemplate"]["ContainerSpec"];
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(o, "\nID:\t\t{}", s.id);
    let _ = writeln!(o, "Name:\t\t{}", spec["Name"].as_str().unwrap_or(""));
    if let Some(labels) = spec["Labels"].as_object().filter(|l| !l.is_empty()) {
        o.push_str("Labels:\n");
        for (k, v) in labels {
            let _ = writeln!(o, " {k}={}", v.as_str().unwrap_or(""));
        }
    }
    let mode = &spec["Mode"];
    if let Some(n) = mode["Replicated"]["Replicas"].as_u64() {
        let _ = writeln!(o, "Service Mode:\tReplicated\n Replicas:\t{n}");
    } else if mode.get("Global").is_some() {
        o.push_str("Service Mode:\tGlobal\n");
    } else if let Some(j) = mode.get("ReplicatedJob") {
        let _ = writeln!(
            o,
            "Service Mode:\tReplicated Job\n Max Concurrent:\t{}\n Total Completions:\t{}",
            j["MaxConcurrent"], j["TotalCompletions"]
        );
    } else {
        o.push_str("Service Mode:\tGlobal Job\n");
    }
    if let Some(u) = v.get("UpdateStatus") {
        let _ = writeln!(
            o,
            "UpdateStatus:\n State:\t\t{}",
            u["State"].as_str().unwrap_or("")
        );
        if let Some(t) = u.get("StartedAt") {
            let _ = writeln!(o, " Started:\t{}", t.as_str().unwrap_or(""));
        }
        if let Some(t) = u.get("CompletedAt") {
            let _ = writeln!(o, " Completed:\t{}", t.as_str().unwrap_or(""));
        }
        let _ = writeln!(o, " Message:\t{}", u["Message"].as_str().unwrap_or(""));
    }
    if let Some(cons) = spec["TaskTemplate"]["Placement"]["Constraints"].as_array() {
        let list: Vec<&str> = cons.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(o, "Placement:\n Constraints:\t[{}]", list.join(" "));
    } else {
        o.push_str("Placement:\n");
    }
    for (title, key) in [
        ("UpdateConfig", "UpdateConfig"),
        ("RollbackConfig", "RollbackConfig"),
    ] {
        let u = &spec[key];
        let _ = writeln!(o, "{title}:\n Parallelism:\t{}", u["Parallelism"]);
        let _ = writeln!(
            o,
            " On failure:\t{}",
            u["FailureAction"].as_str().unwrap_or("")
        );
        let _ = writeln!(o, " Max failure ratio: {}", u["MaxFailureRatio"]);
        let _ = writeln!(
            o,
            " Update order:      {}",
            u["Order"].as_str().unwrap_or("")
        );
    }
    o.push_str("ContainerSpec:\n");
    let _ = writeln!(o, " Image:\t\t{}", c["Image"].as_str().unwrap_or(""));
    let words = |k: &str| {
        c[k].as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    if let Some(args) = words("Args") {
        let _ = writeln!(o, " Args:\t\t{args}");
    }
    if let Some(env) = c["Env"].as_array() {
        o.push_str(" Env:\t\t");
        let list: Vec<&str> = env.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(o, "{}", list.join("\n\t\t"));
    }
    let joined = |k: &str| {
        c[k].as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    if c.get("CapabilityAdd").is_some() || c.get("CapabilityDrop").is_some() {
        o.push_str("Capabilities:\n");
        if let Some(add) = joined("CapabilityAdd") {
            let _ = writeln!(o, " Add: {add}");
        }
        if let Some(drop) = joined("CapabilityDrop") {
            let _ = writeln!(o, " Drop: {drop}");
        }
    }
    if let Some(init) = c["Init"].as_bool() {
        let _ = writeln!(o, " Init: {init}");
    }
    if let Some(sysctls) = c["Sysctls"].as_object() {
        o.push_str("SysCtls:\n");
        for (k, v) in sysctls {
            let _ = writeln!(o, " {k}: {}", v.as_str().unwrap_or(""));
        }
    }
    if let Some(ulimits) = c["Ulimits"].as_array() {
        o.push_str("Ulimits:\n");
        for u in ulimits {
            let name = u["Name"].as_str().unwrap_or("");
            let _ = writeln!(o, " {name}: {}:{}", u["Soft"], u["Hard"]);
        }
    }
    o.push_str("Resources:\n");
    if let Some(pids) = spec["TaskTemplate"]["Resources"]["Limits"]["Pids"].as_i64() {
        let _ = writeln!(o, " Limits:\n  PIDs:\t\t{pids}");
    }
    if let Some(log) = spec["TaskTemplate"].get("LogDriver") {
        o.push_str("Log Driver:\n");
        if let Some(name) = log["Name"].as_str() {
            let _ = writeln!(o, " Name:\t\t{name}");
        }
        if let Some(opts) = log["Options"].as_object() {
            o.push_str(" LogOpts:\n");
            for (k, v) in opts {
                let _ = writeln!(o, "  {k}:\t\t{}", v.as_str().unwrap_or(""));
            }
        }
    }
    let _ = writeln!(
        o,
        "Endpoint Mode:\t{}",
        spec["EndpointSpec"]["Mode"].as_str().unwrap_or("vip")
    );
    if let Some(ports) = spec["EndpointSpec"]["Ports"].as_array() {
        o.push_str("Ports:\n");
        for p in ports {
            let _ = writeln!(
                o,
                " PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {}",
                p.get("PublishedPort").unwrap_or(&json!(0)),
                p["Protocol"].as_str().unwrap_or(""),
                p["TargetPort"],
                p["PublishMode"].as_str().unwrap_or("")
            );
        }
    }
    o
}
