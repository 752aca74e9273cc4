//! When a followed service counts as converged, and what is printed.

use shoal_proto::objects::{
    GlobalService, ReplicatedService, Service, Task, TaskState as S, UpdateStatus,
    service_spec::Mode, update_status::State as U,
};

use super::{service, task};
use crate::cmd::service::progress::{Expect, Screen, Verdict, bar, judge, lines};

fn web(replicas: u64) -> Service {
    service(
        "svc",
        "web",
        Mode::Replicated(ReplicatedService { replicas }),
    )
}

fn running(slot: u64) -> Task {
    task(
        &format!("t{slot}"),
        "svc",
        slot,
        "n1",
        S::Running,
        S::Running,
        100,
    )
}

fn status(state: U, message: &str) -> Option<UpdateStatus> {
    Some(UpdateStatus {
        state: state as i32,
        message: message.into(),
        ..Default::default()
    })
}

fn verify() -> Vec<(String, String)> {
    vec![("verify".into(), "Service converged".into())]
}

#[test]
fn replicated_converges_when_every_slot_runs() {
    let s = web(2);
    let e = Expect::default();
    assert_eq!(judge(&s, &[running(1)], &e), Verdict::Waiting);
    let starting = task("t2", "svc", 2, "n1", S::Running, S::Starting, 100);
    assert_eq!(judge(&s, &[running(1), starting], &e), Verdict::Waiting);
    assert_eq!(
        judge(&s, &[running(1), running(2)], &e),
        Verdict::Converged(verify())
    );
    // start-first: a new task that should run but does not yet holds it back.
    let extra = task("t3", "svc", 1, "n1", S::Running, S::Preparing, 120);
    assert_eq!(
        judge(&s, &[running(1), running(2), extra], &e),
        Verdict::Waiting
    );
    // Old tasks shutting down do not.
    let old = task("t0", "svc", 1, "n1", S::Shutdown, S::Running, 50);
    assert_eq!(
        judge(&s, &[old, running(1), running(2)], &e),
        Verdict::Converged(verify())
    );
}

#[test]
fn tasks_of_an_older_spec_are_not_converged() {
    let mut s = web(1);
    if let Some(c) = s
        .spec
        .as_mut()
        .and_then(|s| s.task.as_mut())
        .and_then(|t| t.container.as_mut())
    {
        c.image = "nginx:1.26".into();
    }
    assert_eq!(
        judge(&s, &[running(1)], &Expect::default()),
        Verdict::Waiting
    );
}

#[test]
fn global_converges_when_every_task_runs() {
    let s = service("svc", "agent", Mode::Global(GlobalService {}));
    let e = Expect::default();
    assert_eq!(judge(&s, &[], &e), Verdict::Waiting);
    let a = task("a", "svc", 0, "n1", S::Running, S::Running, 1);
    let b = task("b", "svc", 0, "n2", S::Running, S::Assigned, 1);
    assert_eq!(judge(&s, &[a.clone(), b], &e), Verdict::Waiting);
    assert_eq!(judge(&s, &[a], &e), Verdict::Converged(verify()));
}

#[test]
fn update_status_decides() {
    let mut s = web(1);
    let e = Expect::default();
    s.update_status = status(U::Updating, "");
    assert_eq!(judge(&s, &[running(1)], &e), Verdict::Waiting);
    s.update_status = status(U::Completed, "update completed");
    assert_eq!(judge(&s, &[running(1)], &e), Verdict::Converged(verify()));
    s.update_status = status(
        U::Paused,
        "update paused due to failure or early termination of task t1",
    );
    match judge(&s, &[running(1)], &e) {
        Verdict::Failed(_, err) => assert_eq!(
            err,
            "service update paused: update paused due to failure or early termination of task t1"
        ),
        v => panic!("{v:?}"),
    }
    s.update_status = status(U::RollbackCompleted, "rollback completed");
    match judge(&s, &[running(1)], &e) {
        Verdict::Failed(last, err) => {
            assert_eq!(
                last[0],
                ("rollback".to_string(), "rollback completed".to_string())
            );
            assert_eq!(err, "service rolled back: rollback completed");
        }
        v => panic!("{v:?}"),
    }
    let asked = Expect {
        rollback: true,
        ..Expect::default()
    };
    assert_eq!(
        judge(&s, &[running(1)], &asked),
        Verdict::Converged(verify())
    );
    s.update_status = status(U::RollbackPaused, "boom");
    assert!(
        matches!(judge(&s, &[running(1)], &asked), Verdict::Failed(_, e) if e == "service rollback paused: boom")
    );
}

#[test]
fn an_old_status_is_not_the_answer() {
    let mut s = web(1);
    s.update_status = status(U::Paused, "old failure");
    let e = Expect {
        baseline: s.update_status.clone(),
        rollback: false,
    };
    assert_eq!(judge(&s, &[running(1)], &e), Verdict::Converged(verify()));
}

#[test]
fn lines_like_dockers() {
    let s = web(3);
    let t2 = task("t2", "svc", 2, "n1", S::Running, S::Preparing, 100);
    let mut t3 = task("t3", "svc", 3, "n1", S::Shutdown, S::Failed, 100);
    if let Some(st) = t3.status.as_mut() {
        st.err = "starting container failed: no command".into();
    }
    let tasks = [running(1), t2, t3];
    let got = lines(&s, &tasks, true);
    assert_eq!(
        got[0],
        (
            "overall progress".to_string(),
            "1 out of 3 tasks".to_string()
        )
    );
    assert_eq!(got[1].0, "1/3");
    assert_eq!(
        got[1].1,
        "running   [==================================================>] "
    );
    assert_eq!(got[2].1, format!("preparing {}", bar(S::Preparing)));
    assert_eq!(got[3].1, "starting container failed: no command");
    let plain = lines(&s, &tasks, false);
    assert_eq!(plain[1].1, "running");
    assert_eq!(bar(S::New), format!("[=====>{}] ", " ".repeat(45)));
}

#[test]
fn screen_prints_each_change_once_off_a_terminal() {
    let mut out = Vec::new();
    let mut screen = Screen::new(&mut out, false);
    let one = |v: &str| {
        vec![
            ("overall progress".to_string(), v.to_string()),
            ("1/1".to_string(), "running".to_string()),
        ]
    };
    screen.show(&one("0 out of 1 tasks")).unwrap();
    screen.show(&one("0 out of 1 tasks")).unwrap();
    screen.show(&one("1 out of 1 tasks")).unwrap();
    screen.finish(&verify()).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "overall progress: 0 out of 1 tasks\n1/1: running\noverall progress: 1 out of 1 tasks\nverify: Service converged\n"
    );
}

#[test]
fn screen_redraws_in_place_on_a_terminal() {
    let mut out = Vec::new();
    let mut screen = Screen::new(&mut out, true);
    let pic = vec![(
        "overall progress".to_string(),
        "0 out of 1 tasks".to_string(),
    )];
    screen.show(&pic).unwrap();
    screen.show(&pic).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "\x1b[2Koverall progress: 0 out of 1 tasks\n\x1b[1A\x1b[2Koverall progress: 0 out of 1 tasks\n"
    );
}
