use std::collections::VecDeque;
use std::sync::Mutex;

use super::*;
use crate::engine_choice::{EngineInfo, EngineKind};
use crate::exec::{
    EngineTask, ExecError, ExecOutput, Exit, LogOptions, LogStream, Started, TaskRun,
};

/// Answers `exec` from a script: `Some(code)`, or `None` to hang.
struct Scripted {
    answers: Mutex<VecDeque<Option<i32>>>,
    calls: Mutex<Vec<Vec<String>>>,
}

impl Scripted {
    fn new(answers: &[Option<i32>]) -> Arc<Scripted> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.iter().copied().collect()),
            calls: Mutex::new(Vec::new()),
        })
    }
}

fn unused() -> ExecError {
    ExecError::Failed("not used by health checks".into())
}

#[tonic::async_trait]
impl Engine for Scripted {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            kind: EngineKind::Sim,
            version: "test".into(),
        }
    }
    async fn prepare(&self, _: &TaskRun) -> Result<(), ExecError> {
        Err(unused())
    }
    async fn start(&self, _: &str) -> Result<Started, ExecError> {
        Err(unused())
    }
    async fn wait(&self, _: &str) -> Result<Exit, ExecError> {
        Err(unused())
    }
    async fn stop(&self, _: &str, _: Option<&str>, _: Duration) -> Result<(), ExecError> {
        Err(unused())
    }
    async fn remove(&self, _: &str) -> Result<(), ExecError> {
        Err(unused())
    }
    async fn list(&self) -> Result<Vec<EngineTask>, ExecError> {
        Err(unused())
    }
    async fn exec(&self, _: &str, cmd: &[String], _: Duration) -> Result<ExecOutput, ExecError> {
        self.calls.lock().unwrap().push(cmd.to_vec());
        let next = self.answers.lock().unwrap().pop_front().unwrap_or(Some(0));
        match next {
            Some(code) => Ok(ExecOutput {
                code,
                output: format!("code {code}"),
            }),
            None => std::future::pending().await,
        }
    }
    async fn logs(&self, _: &str, _: LogOptions) -> Result<LogStream, ExecError> {
        Err(unused())
    }
}

fn config(retries: u32, start_period: Duration) -> HealthConfig {
    HealthConfig {
        command: vec!["true".into()],
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        retries,
        start_period,
    }
}

/// The statuses seen after each of `n` probes.
async fn statuses(engine: Arc<Scripted>, config: HealthConfig, n: usize) -> Vec<Health> {
    let interval = config.interval;
    let timeout = config.timeout;
    let mut rx = spawn(engine, "t".into(), config);
    assert_eq!(rx.borrow().status, Health::Starting);
    let mut out = Vec::new();
    for _ in 0..n {
        // Each probe publishes once (a hung one after its timeout).
        tokio::time::timeout(interval + timeout + Duration::from_secs(2), rx.changed())
            .await
            .expect("a probe result")
            .expect("checker alive");
        out.push(rx.borrow_and_update().status);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn healthy_then_unhealthy_after_retries_then_healthy_again() {
    use Health::*;
    let engine = Scripted::new(&[Some(0), Some(1), Some(1), Some(1), Some(0)]);
    let got = statuses(engine.clone(), config(3, Duration::ZERO), 5).await;
    assert_eq!(got, vec![Healthy, Healthy, Healthy, Unhealthy, Healthy]);
    assert_eq!(engine.calls.lock().unwrap()[0], vec!["true".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn failures_in_the_start_period_do_not_count() {
    use Health::*;
    // Probes at 10s, 20s, 30s, 40s, 50s; the start period ends at 25s.
    let engine = Scripted::new(&[Some(1), Some(1), Some(1), Some(1), Some(1)]);
    let got = statuses(engine, config(3, Duration::from_secs(25)), 5).await;
    assert_eq!(got, vec![Starting, Starting, Starting, Starting, Unhealthy]);
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_times_out_as_a_failure() {
    let engine = Scripted::new(&[None]);
    let mut rx = spawn(engine, "t".into(), config(1, Duration::ZERO));
    rx.changed().await.unwrap();
    let state = rx.borrow().clone();
    assert_eq!(state.status, Health::Unhealthy);
    assert!(state.output.contains("timed out"), "{state:?}");
}

#[tokio::test(start_paused = true)]
async fn the_checker_stops_with_its_receivers() {
    let engine = Scripted::new(&[]);
    let (tx, rx) = watch::channel(HealthState::default());
    let task = tokio::spawn(run(engine, "t".into(), config(3, Duration::ZERO), tx));
    drop(rx);
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("stopped")
        .unwrap();
}

#[test]
fn specs_parse_with_docker_defaults() {
    use shoal_proto::objects::HealthConfig as Spec;
    let spec = |test: &[&str]| Spec {
        test: test.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    assert_eq!(HealthConfig::from_spec(&spec(&[])), Ok(None));
    assert_eq!(HealthConfig::from_spec(&spec(&["NONE"])), Ok(None));
    let c = HealthConfig::from_spec(&spec(&["CMD-SHELL", "curl -f localhost"]))
        .unwrap()
        .unwrap();
    assert_eq!(c.command, vec!["/bin/sh", "-c", "curl -f localhost"]);
    assert_eq!(
        (c.interval, c.timeout, c.retries, c.start_period),
        (
            Duration::from_secs(30),
            Duration::from_secs(30),
            3,
            Duration::ZERO
        )
    );
    let mut s = spec(&["CMD", "pg_isready", "-q"]);
    s.interval = Some(prost_types::Duration {
        seconds: 5,
        nanos: 0,
    });
    s.retries = 5;
    let c = HealthConfig::from_spec(&s).unwrap().unwrap();
    assert_eq!(c.command, vec!["pg_isready", "-q"]);
    assert_eq!((c.interval, c.retries), (Duration::from_secs(5), 5));
    assert!(HealthConfig::from_spec(&spec(&["CMD"])).is_err());
    assert!(HealthConfig::from_spec(&spec(&["bogus"])).is_err());
}

#[test]
fn the_services_check_wins_and_the_image_fills_in() {
    use shoal_proto::objects::HealthConfig as Spec;
    let secs = |s| {
        Some(prost_types::Duration {
            seconds: s,
            nanos: 0,
        })
    };
    let image = Spec {
        test: vec!["CMD".into(), "/healthy".into()],
        interval: secs(30),
        retries: 3,
        ..Default::default()
    };
    let service = Spec {
        test: vec!["CMD-SHELL".into(), "true".into()],
        ..Default::default()
    };
    assert_eq!(
        HealthConfig::effective(Some(&service), Some(image.clone())),
        Some(service)
    );
    assert_eq!(
        HealthConfig::effective(None, Some(image.clone())),
        Some(image.clone())
    );
    let timings = Spec {
        interval: secs(2),
        ..Default::default()
    };
    let merged = HealthConfig::effective(Some(&timings), Some(image.clone())).unwrap();
    assert_eq!(merged.test, image.test);
    assert_eq!((merged.interval, merged.retries), (secs(2), 3));
    let none = Spec {
        test: vec!["NONE".into()],
        ..Default::default()
    };
    let off = HealthConfig::effective(Some(&none), Some(image)).unwrap();
    assert!(
        HealthConfig::from_spec(&off).unwrap().is_none(),
        "NONE disables"
    );
}
