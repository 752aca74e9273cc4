//! Placing a run of alike tasks through a heap makes the same plan as
//! choosing a node for each task in turn, over every node (the reference
//! below), on random clusters.

use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::{Node, Task};

use super::kit::*;
use crate::scheduler::Plan;
use crate::scheduler::node_info::{Demand, NodeInfo};
use crate::scheduler::pipeline::choose;
use crate::scheduler::{pending_tasks, plan};
use crate::store::Tables;
use crate::testing::Rng;

/// Every task on its own, looking at every node: what the plan must equal.
fn one_by_one(tables: &Tables, pending: &[&Task]) -> Plan {
    let mut nodes: Vec<NodeInfo<'_>> = tables
        .all::<Node>()
        .map(|n| NodeInfo::new(n, tables))
        .collect();
    let mut out = Plan::default();
    for task in pending {
        let demand = Demand::new(task).expect("constraints parse");
        match choose(&nodes, &demand) {
            Ok(i) => {
                nodes[i].place(&demand);
                out.assign.push((task.id.clone(), nodes[i].node.id.clone()));
            }
            Err((reason, why)) => {
                out.unschedulable.push((task.id.clone(), why));
                *out.reasons.entry(reason).or_default() += 1;
            }
        }
    }
    out
}

fn cluster(rng: &mut Rng) -> (Vec<Node>, Vec<Task>) {
    let nodes: Vec<Node> = (0..rng.below(12) + 1)
        .map(|i| {
            let mut n = with_label(
                node(&format!("n{i:02}")),
                "zone",
                ["a", "b"][rng.below(2) as usize],
            );
            match rng.below(8) {
                0 => n = availability(n, Availability::Drain),
                1 => n = state(n, NodeState::Down),
                _ => {}
            }
            n
        })
        .collect();
    let mut tasks = Vec::new();
    for s in 0..rng.below(4) + 1 {
        let service = format!("s{s}");
        let cpus = [0, CPU / 2, CPU][rng.below(3) as usize];
        let port = (rng.below(4) == 0).then_some(8000 + s as u32);
        let max = [0, 0, 1, 2][rng.below(4) as usize];
        let zone = (rng.below(3) == 0).then_some("node.labels.zone==a");
        let spreads = rng.below(5) == 0;
        // Two versions of the service's spec side by side, as in an update.
        for version in 0..rng.below(2) + 1 {
            for r in 0..rng.below(25) {
                let mut t = reserving(
                    task(&format!("{service}-v{version}-{r:02}"), &service),
                    cpus,
                    0,
                );
                t.spec.get_or_insert_default().force_update = version;
                if let Some(p) = port {
                    t = host_port(t, p);
                }
                placement(&mut t).max_replicas = max;
                if let Some(c) = zone {
                    t = constrained(t, &[c]);
                }
                if spreads {
                    t = spread(t, &["node.labels.zone"]);
                }
                // Some already run somewhere.
                if rng.below(6) == 0 && !nodes.is_empty() {
                    let on = &nodes[rng.below(nodes.len() as u64) as usize].id;
                    t = running(t, on);
                }
                tasks.push(t);
            }
        }
    }
    (nodes, tasks)
}

#[test]
fn runs_place_exactly_as_one_task_at_a_time() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (nodes, tasks) = cluster(&mut rng);
        let store = store(nodes, tasks);
        let (fast, reference) = store.view(|t| {
            let pending = pending_tasks(t);
            (plan(t, &pending), one_by_one(t, &pending))
        });
        assert_eq!(fast, reference, "seed {seed}");
    }
}
