use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use shoal_proto::objects::{ContainerSpec, Task, TaskSpec};

use super::*;

fn run(id: &str, labels: &[(&str, &str)]) -> TaskRun {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TaskRun {
        task: Task {
            id: id.into(),
            spec: Some(TaskSpec {
                container: Some(ContainerSpec {
                    labels,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        files: vec![],
    }
}

#[test]
fn durations_parse_like_go() {
    assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_duration("3"), None);
    assert_eq!(parse_duration("3x"), None);
}

#[tokio::test]
async fn runs_until_stopped() {
    let e = SimEngine::new();
    e.prepare(&run("t1", &[])).await.unwrap();
    e.prepare(&run("t1", &[])).await.unwrap(); // idempotent
    e.start("t1").await.unwrap();
    e.start("t1").await.unwrap();
    let list = e.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].running);
    assert_eq!(
        e.exec("t1", &[], Duration::from_secs(1))
            .await
            .unwrap()
            .code,
        0
    );
    e.stop("t1", None, Duration::from_secs(1)).await.unwrap();
    let exit = e.wait("t1").await.unwrap();
    assert_eq!(exit.code, 143);
    e.stop("t1", None, Duration::from_secs(1)).await.unwrap();
    e.remove("t1").await.unwrap();
    e.remove("t1").await.unwrap();
    assert!(e.list().await.unwrap().is_empty());
    assert!(matches!(e.wait("t1").await, Err(ExecError::NotFound(_))));
}

#[tokio::test(start_paused = true)]
async fn scripted_exit_after() {
    let e = SimEngine::new();
    e.prepare(&run(
        "t",
        &[(EXIT_AFTER, "2s"), (EXIT_CODE, "3"), (EXEC_EXIT_CODE, "1")],
    ))
    .await
    .unwrap();
    e.start("t").await.unwrap();
    assert_eq!(
        e.exec("t", &[], Duration::from_secs(1)).await.unwrap().code,
        1
    );
    let started = tokio::time::Instant::now();
    let exit = e.wait("t").await.unwrap();
    assert_eq!(exit.code, 3);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(e.exec("t", &[], Duration::from_secs(1)).await.is_err());
}

#[tokio::test]
async fn scripted_failures() {
    let e = SimEngine::new();
    let err = e.prepare(&run("r", &[(REJECT, "no such image")])).await;
    assert!(matches!(err, Err(ExecError::Rejected(m)) if m == "no such image"));
    let err = e.prepare(&run("b", &[(EXIT_AFTER, "soon")])).await;
    assert!(err.unwrap_err().is_rejection());

    e.prepare(&run("f", &[(FAIL_START, "boom")])).await.unwrap();
    let err = e.start("f").await;
    assert!(matches!(err, Err(ExecError::Failed(m)) if m == "boom"));
    assert!(matches!(e.start("nope").await, Err(ExecError::NotFound(_))));
}

#[tokio::test]
async fn follow_logs_end_with_the_task() {
    let e = Arc::new(SimEngine::new());
    e.prepare(&run("t", &[])).await.unwrap();
    e.start("t").await.unwrap();
    let all = e.logs("t", LogOptions::default()).await.unwrap();
    assert_eq!(all.count().await, 0);
    let follow = e
        .logs(
            "t",
            LogOptions {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reader = tokio::spawn(follow.count());
    tokio::task::yield_now().await;
    e.stop("t", Some("SIGKILL"), Duration::ZERO).await.unwrap();
    assert_eq!(reader.await.unwrap(), 0);
}
