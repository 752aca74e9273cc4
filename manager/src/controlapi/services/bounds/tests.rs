//! What `service create`/`update` refuse before anything is stored, and the
//! words the user reads.

use shoal_proto::objects::{
    ConfigReference, ContainerSpec, HealthConfig, ReplicatedJob, ReplicatedService, RestartPolicy,
    SecretReference, TaskSpec,
};

use super::*;

fn pd(seconds: i64, nanos: i32) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos }
}

fn spec(container: ContainerSpec) -> ServiceSpec {
    ServiceSpec {
        task: Some(TaskSpec {
            container: Some(container),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn refused(spec: &ServiceSpec) -> String {
    let e = check(spec).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    e.message().to_string()
}

#[test]
fn replica_counts_are_bounded() {
    let mut s = spec(ContainerSpec::default());
    s.mode = Some(service_spec::Mode::Replicated(ReplicatedService {
        replicas: MAX_REPLICAS,
    }));
    assert!(check(&s).is_ok());
    s.mode = Some(service_spec::Mode::Replicated(ReplicatedService {
        replicas: 1_000_000_000,
    }));
    assert_eq!(
        refused(&s),
        "replicas 1000000000 is over Shoal's limit of 100000 per service"
    );
    s.mode = Some(service_spec::Mode::ReplicatedJob(ReplicatedJob {
        max_concurrent: MAX_REPLICAS + 1,
        total_completions: 1,
    }));
    assert!(refused(&s).starts_with("max-concurrent 100001 is over"));
    s.mode = Some(service_spec::Mode::ReplicatedJob(ReplicatedJob {
        max_concurrent: 1,
        total_completions: u64::MAX,
    }));
    assert!(refused(&s).contains("total completions"));
    s.mode = Some(service_spec::Mode::GlobalJob(Default::default()));
    assert!(check(&s).is_ok());
}

#[test]
fn durations_must_be_sane() {
    let mut s = spec(ContainerSpec {
        stop_grace_period: Some(pd(-1, 0)),
        ..Default::default()
    });
    assert_eq!(refused(&s), "stop-grace-period cannot be negative");

    let task = s.task.as_mut().unwrap();
    task.container.as_mut().unwrap().stop_grace_period = Some(pd(10, 0));
    task.restart = Some(RestartPolicy {
        delay: Some(pd(i64::MIN, 0)),
        ..Default::default()
    });
    assert_eq!(refused(&s), "restart-delay cannot be negative");
    s.task.as_mut().unwrap().restart = Some(RestartPolicy {
        window: Some(pd(i64::MAX, 999_999_999)),
        ..Default::default()
    });
    assert_eq!(
        refused(&s),
        "restart-window cannot be longer than 876000h0m0s"
    );
    s.task.as_mut().unwrap().restart = None;

    s.update = Some(UpdateConfig {
        monitor: Some(pd(i64::MAX, 0)),
        ..Default::default()
    });
    assert!(refused(&s).starts_with("update-monitor cannot be longer"));
    s.update = None;
    s.rollback = Some(UpdateConfig {
        delay: Some(pd(0, -1)),
        ..Default::default()
    });
    assert_eq!(refused(&s), "rollback-delay cannot be negative");
    s.rollback = None;
    assert!(check(&s).is_ok());
}

#[test]
fn health_timings_follow_docker() {
    let health = |interval, timeout, start| {
        spec(ContainerSpec {
            healthcheck: Some(HealthConfig {
                test: vec!["CMD".into(), "true".into()],
                interval: Some(interval),
                timeout: Some(timeout),
                start_period: Some(start),
                retries: 3,
            }),
            ..Default::default()
        })
    };
    // Zero means "the default", as in Docker.
    assert!(check(&health(pd(0, 0), pd(1, 0), pd(0, 0))).is_ok());
    assert_eq!(
        refused(&health(pd(0, 500), pd(1, 0), pd(0, 0))),
        "health-interval cannot be less than 1ms"
    );
    assert_eq!(
        refused(&health(pd(1, 0), pd(-3, 0), pd(0, 0))),
        "health-timeout cannot be negative"
    );
    assert!(
        refused(&health(pd(1, 0), pd(1, 0), pd(i64::MAX, 0))).starts_with("health-start-period")
    );
}

#[test]
fn targets_stay_inside_the_task() {
    let with = |secret: &str, config: &str| {
        spec(ContainerSpec {
            secrets: vec![SecretReference {
                secret_name: "s".into(),
                target: Some(FileTarget {
                    name: secret.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            configs: vec![ConfigReference {
                config_name: "c".into(),
                target: Some(FileTarget {
                    name: config.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    // Docker's forms: a name, a nested name, an absolute path in the task.
    for (s, c) in [
        ("pw", "/etc/app.conf"),
        ("db/pw", "app.conf"),
        ("/etc/evil", ""),
    ] {
        assert!(check(&with(s, c)).is_ok(), "{s} {c}");
    }
    let e = refused(&with("s", "../../x"));
    assert!(
        e.starts_with("invalid config target \"../../x\": '..' is not allowed"),
        "{e}"
    );
    assert!(
        refused(&with("/run/secrets/../../etc/shadow", "c")).starts_with("invalid secret target")
    );
    assert!(refused(&with("s", "/etc/")).contains("must name a file"));
    assert!(refused(&with("/", "c")).contains("must name a file"));
    assert!(refused(&with("a\0b", "c")).contains("NUL"));
}
