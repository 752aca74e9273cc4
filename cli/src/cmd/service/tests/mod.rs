//! Offline tests of the service commands: flags → spec, the tables, the
//! inspect JSON and the progress lines, from hand-built objects.

mod progress;
mod runtime;
mod tables;
mod to_spec;

use shoal_proto::objects::{
    Annotations, ContainerSpec, Meta, Service, ServiceSpec, Task, TaskSpec, TaskState, TaskStatus,
    service_spec::Mode,
};

use super::ServiceCommand;
use crate::cmd::{Cli, Command};

/// Parses `shoal service ARGS...`.
fn parse(args: &[&str]) -> Result<ServiceCommand, clap::Error> {
    use clap::Parser;
    let argv = ["shoal", "service"].iter().chain(args).copied();
    match Cli::try_parse_from(argv)?.command {
        Command::Service(cmd) => Ok(cmd),
        other => panic!("not a service command: {other:?}"),
    }
}

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// A service named `name` with `mode`, image `nginx:1.25`.
fn service(id: &str, name: &str, mode: Mode) -> Service {
    Service {
        id: id.into(),
        meta: Some(Meta {
            version: 7,
            created_at: Some(ts(1_700_000_000)),
            updated_at: Some(ts(1_700_000_060)),
        }),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                labels: Default::default(),
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "nginx:1.25".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(mode),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A task of `service_id` in `slot` on `node`, created at `created`.
fn task(
    id: &str,
    service_id: &str,
    slot: u64,
    node: &str,
    desired: TaskState,
    state: TaskState,
    created: i64,
) -> Task {
    Task {
        id: id.into(),
        meta: Some(Meta {
            version: 1,
            created_at: Some(ts(created)),
            updated_at: None,
        }),
        spec: Some(TaskSpec {
            container: Some(ContainerSpec {
                image: "nginx:1.25".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        service_id: service_id.into(),
        slot,
        node_id: node.into(),
        status: Some(TaskStatus {
            timestamp: Some(ts(created + 5)),
            state: state as i32,
            ..Default::default()
        }),
        desired_state: desired as i32,
        ..Default::default()
    }
}
