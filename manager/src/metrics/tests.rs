use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::registry::Registry;
use shoal_proto::objects::{Annotations, Secret, SecretSpec};

use super::*;
use crate::testing;

fn scrape(slot: &ManagerSlot) -> String {
    let mut registry = Registry::default();
    register(&mut registry, slot.clone());
    let mut text = String::new();
    encode(&mut text, &registry).expect("encode");
    text
}

/// The value of `series` (name and labels as printed) in `text`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            (name == series).then(|| v.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[test]
fn a_node_without_a_manager_shows_no_manager_metrics() {
    assert_eq!(scrape(&ManagerSlot::default()), "");
}

#[tokio::test]
async fn a_manager_shows_its_raft_state_its_store_and_its_proposals() {
    let leader = testing::leader().await;
    let slot = ManagerSlot::default();
    slot.set(Some(leader.ctx.clone()));

    let before = scrape(&slot);
    assert_eq!(value(&before, "shoal_raft_is_leader"), 1.0);
    assert_eq!(value(&before, "shoal_raft_members"), 1.0);
    assert!(value(&before, "shoal_raft_term") >= 1.0);
    assert!(value(&before, "shoal_raft_leader_changes_total") >= 1.0);
    assert_eq!(value(&before, r#"shoal_store_objects{kind="secret"}"#), 0.0);
    for reason in crate::scheduler::pipeline::REASONS {
        // Every reason, before any pass ran (other tests' schedulers may
        // run meanwhile, so only its presence is certain).
        let series = format!(r#"shoal_scheduler_unschedulable_tasks{{reason="{reason}"}} "#);
        assert!(before.contains(&series), "{series}");
    }
    let proposals = value(&before, "shoal_raft_proposal_duration_seconds_count");

    let secret = Secret {
        id: "s1".into(),
        spec: Some(SecretSpec {
            annotations: Some(Annotations {
                name: "one".into(),
                ..Default::default()
            }),
            data: b"x".to_vec(),
        }),
        ..Default::default()
    };
    leader
        .ctx
        .update(|tx| Ok::<_, crate::context::CommitError>(tx.create(secret)?))
        .await
        .expect("commit");

    let after = scrape(&slot);
    assert_eq!(value(&after, r#"shoal_store_objects{kind="secret"}"#), 1.0);
    assert!(value(&after, "shoal_raft_proposal_duration_seconds_count") > proposals);
    let applied = value(&after, "shoal_raft_applied_index");
    assert!(applied > value(&before, "shoal_raft_applied_index"));
    assert!(value(&after, "shoal_raft_commit_index") >= applied);
    // The bootstrap snapshot is at index 1.
    assert!(value(&after, "shoal_raft_snapshot_index") >= 1.0);
    leader.stop.cancel();
}
