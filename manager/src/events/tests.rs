//! Docker's attribute and time rules, and the follower that turns store
//! commits into events (driven by applying batches to a store directly).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use shoal_proto::control::watch_event::Object;
use shoal_proto::objects::node_spec::Availability;
use shoal_proto::objects::node_status::State as NodeState;
use shoal_proto::objects::service_spec::Mode;
use shoal_proto::objects::update_status::State as UpdateState;
use shoal_proto::objects::{
    Annotations, Cluster, ContainerSpec, Meta, Node, NodeDescription, NodeRole, NodeSpec,
    NodeStatus, RegistryAuth, ReplicatedService, Secret, SecretSpec, Service, ServiceSpec, Task,
    TaskSpec, TaskState, TaskStatus, UpdateStatus,
};
use tokio_util::sync::CancellationToken;

use super::attributes::{self, Attributes};
use super::*;
use crate::store::{StoreError, Tx};

fn annotations(name: &str) -> Option<Annotations> {
    Some(Annotations {
        name: name.into(),
        ..Default::default()
    })
}

pub(super) fn service(id: &str, name: &str, image: &str, replicas: u64) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: annotations(name),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(Mode::Replicated(ReplicatedService { replicas })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(id: &str, hostname: &str, role: NodeRole, state: NodeState) -> Node {
    Node {
        id: id.into(),
        spec: Some(NodeSpec {
            desired_role: role as i32,
            ..Default::default()
        }),
        description: Some(NodeDescription {
            hostname: hostname.into(),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(id: &str, service: &str, slot: u64, state: TaskState) -> Task {
    Task {
        id: id.into(),
        service_id: service.into(),
        slot,
        node_id: "n1".into(),
        status: Some(TaskStatus {
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_service_update_names_what_changed() {
    let old = service("s1", "web", "nginx:1", 2);
    let mut new = service("s1", "web", "nginx:2", 5);
    new.update_status = Some(UpdateStatus {
        state: UpdateState::Updating as i32,
        ..Default::default()
    });
    assert_eq!(
        attributes::service(EventAction::Update, &new, Some(&old)),
        attrs(&[
            ("image.new", "nginx:2"),
            ("image.old", "nginx:1"),
            ("name", "web"),
            ("replicas.new", "5"),
            ("replicas.old", "2"),
            ("updatestate.new", "updating"),
        ])
    );
    // A state that moves on names both ends, in Docker's lower case.
    let mut done = new.clone();
    done.update_status.as_mut().unwrap().state = UpdateState::RollbackStarted as i32;
    assert_eq!(
        attributes::service(EventAction::Update, &done, Some(&new)),
        attrs(&[
            ("name", "web"),
            ("updatestate.new", "rollback_started"),
            ("updatestate.old", "updating"),
        ])
    );
    // Nothing changed, or not an update: the name alone.
    assert_eq!(
        attributes::service(EventAction::Update, &old, Some(&old)),
        attrs(&[("name", "web")])
    );
    assert_eq!(
        attributes::service(EventAction::Create, &new, Some(&old)),
        attrs(&[("name", "web")])
    );
    assert_eq!(
        attributes::service(EventAction::Update, &new, None),
        attrs(&[("name", "web")])
    );
}

#[test]
fn a_node_update_names_role_availability_and_state() {
    let old = node("n1", "host-a", NodeRole::Worker, NodeState::Unknown);
    let mut new = node("n1", "host-a", NodeRole::Manager, NodeState::Ready);
    new.spec.as_mut().unwrap().availability = Availability::Drain as i32;
    assert_eq!(
        attributes::node(EventAction::Update, &new, Some(&old)),
        attrs(&[
            ("availability.new", "drain"),
            ("availability.old", "active"),
            ("name", "host-a"),
            ("role.new", "manager"),
            ("role.old", "worker"),
            ("state.new", "ready"),
            ("state.old", "unknown"),
        ])
    );
    // A name given in the spec wins over the host name.
    new.spec.as_mut().unwrap().annotations = annotations("db-1");
    assert_eq!(
        attributes::node(EventAction::Remove, &new, None),
        attrs(&[("name", "db-1")])
    );
}

#[test]
fn tasks_are_named_by_slot_or_node_and_report_state_changes() {
    let t = task("t1", "s1", 3, TaskState::Running);
    assert_eq!(
        attributes::task(EventAction::Update, &t, Some(TaskState::Starting), "web"),
        attrs(&[
            ("name", "web.3"),
            ("state.new", "running"),
            ("state.old", "starting"),
        ])
    );
    let mut global = task("t2", "s1", 0, TaskState::Running);
    global.service_annotations = annotations("agent");
    assert_eq!(
        attributes::task(EventAction::Update, &global, Some(TaskState::Running), "x"),
        attrs(&[("name", "agent.n1")])
    );
}

#[test]
fn times_follow_dockers_rule() {
    let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let updated = created + Duration::from_millis(1_500);
    let now = created + Duration::from_secs(60);
    let meta = Meta {
        created_at: Some(created.into()),
        updated_at: Some(updated.into()),
        ..Default::default()
    };
    let time = |action| attributes::event_time(action, Some(&meta), now);
    assert_eq!(time(EventAction::Create), created);
    assert_eq!(time(EventAction::Update), updated);
    assert_eq!(time(EventAction::Remove), now);
    assert_eq!(attributes::event_time(EventAction::Create, None, now), now);
}

#[test]
fn sent_objects_keep_no_secrets() {
    let mut svc = service("s1", "web", "private/app", 1);
    let container = svc.spec.as_mut().unwrap().task.as_mut().unwrap();
    container.container.as_mut().unwrap().registry_auth = Some(RegistryAuth {
        password: "hunter2".into(),
        ..Default::default()
    });
    let secret = Secret {
        id: "x1".into(),
        spec: Some(SecretSpec {
            annotations: annotations("db-password"),
            data: b"hunter2".to_vec(),
        }),
        ..Default::default()
    };
    let sent = |object| {
        ClusterEvent {
            time: SystemTime::now(),
            action: EventAction::Create,
            object,
            attributes: attributes::named("n"),
        }
        .to_proto()
    };
    let Some(Object::Service(s)) = sent(Changed::Service(Arc::new(svc))).object else {
        panic!("not a service");
    };
    let c = s.spec.unwrap().task.unwrap().container.unwrap();
    assert!(c.registry_auth.is_none());
    assert_eq!(c.image, "private/app");
    let event = sent(Changed::Secret(Arc::new(secret)));
    let Some(Object::Secret(s)) = event.object else {
        panic!("not a secret");
    };
    assert!(s.spec.unwrap().data.is_empty());
    assert!(event.time.is_some());
    assert_eq!(event.attributes["name"], "n");
}

/// A store whose commits `follow` turns into events in `log`.
struct Followed {
    store: Arc<Store>,
    log: EventLog,
    index: u64,
    _stop: tokio_util::sync::DropGuard,
}

impl Followed {
    fn new(seed: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError>) -> Followed {
        let store = Arc::new(Store::new());
        let (batch, ()) = store.build(seed).unwrap();
        store.apply(1, batch).unwrap();
        let log = EventLog::default();
        let stop = CancellationToken::new();
        tokio::spawn(follow(log.clone(), store.clone(), stop.clone()));
        Followed {
            store,
            log,
            index: 1,
            _stop: stop.drop_guard(),
        }
    }

    fn commit(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError>) {
        let (batch, ()) = self.store.build(f).unwrap();
        self.index += 1;
        self.store.apply(self.index, batch).unwrap();
    }

    /// The history once it holds `n` events.
    async fn events(&self, n: usize) -> Vec<Arc<ClusterEvent>> {
        for _ in 0..1000 {
            let history = self.log.subscribe().history;
            if history.len() >= n {
                return history;
            }
            tokio::task::yield_now().await;
        }
        panic!("the log never held {n} events");
    }
}

fn summary(e: &ClusterEvent) -> (Kind, EventAction, String) {
    (e.kind(), e.action, e.object.id().to_string())
}

#[tokio::test]
async fn commits_become_events_compared_with_the_objects_seen_before() {
    // Seeded from the store: the first update already knows "nginx:1".
    let mut f = Followed::new(|tx| tx.create(service("s1", "web", "nginx:1", 1)));
    let mut updated = f.store.view(|t| t.get::<Service>("s1").unwrap().clone());
    updated.spec = service("s1", "web", "nginx:2", 1).spec;
    f.commit(|tx| {
        tx.update(updated)?;
        tx.create(task("t1", "s1", 1, TaskState::New))?;
        tx.create(Cluster {
            id: "c1".into(),
            ..Default::default()
        })
    });
    f.commit(|tx| tx.remove::<Service>("s1"));
    let events = f.events(3).await;
    assert_eq!(
        events.iter().map(|e| summary(e)).collect::<Vec<_>>(),
        [
            (Kind::Service, EventAction::Update, "s1".into()),
            (Kind::Task, EventAction::Create, "t1".into()),
            (Kind::Service, EventAction::Remove, "s1".into()),
        ],
        "the cluster object has no events"
    );
    assert_eq!(events[0].attributes["image.old"], "nginx:1");
    assert_eq!(events[1].attributes["name"], "web.1");
    assert_eq!(events[2].attributes, attrs(&[("name", "web")]));
    // The update's time is the one the store stamped.
    let stamped = f.store.view(|t| t.get::<Task>("t1").unwrap().meta);
    let created = SystemTime::try_from(stamped.unwrap().created_at.unwrap()).unwrap();
    assert_eq!(events[1].time, created);
}

#[tokio::test]
async fn a_restore_reseeds_and_reports_nothing() {
    let mut f = Followed::new(|tx| tx.create(service("s1", "web", "nginx:1", 1)));
    // A snapshot from elsewhere, where the service runs nginx:3.
    let other = Store::new();
    let (batch, ()) = other
        .build(|tx| tx.create(service("s1", "web", "nginx:3", 1)))
        .unwrap();
    other.apply(7, batch).unwrap();
    let (index, snapshot) = other.snapshot();
    f.store.restore(index, snapshot);
    f.index = index;
    // The follower re-reads the store as it is when it reaches the reset.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let mut updated = f.store.view(|t| t.get::<Service>("s1").unwrap().clone());
    updated.spec = service("s1", "web", "nginx:4", 1).spec;
    f.commit(|tx| tx.update(updated));
    let events = f.events(1).await;
    assert_eq!(events.len(), 1, "the restore itself is no event");
    assert_eq!(events[0].attributes["image.old"], "nginx:3");
    assert_eq!(events[0].attributes["image.new"], "nginx:4");
}

#[tokio::test]
async fn task_state_changes_are_compared_with_the_last_state() {
    let mut f = Followed::new(|tx| {
        tx.create(service("s1", "web", "nginx:1", 1))?;
        tx.create(task("t1", "s1", 2, TaskState::Assigned))
    });
    let mut t = f.store.view(|t| t.get::<Task>("t1").unwrap().clone());
    t.status.as_mut().unwrap().state = TaskState::Running as i32;
    f.commit(|tx| tx.update(t));
    let events = f.events(1).await;
    assert_eq!(
        events[0].attributes,
        attrs(&[
            ("name", "web.2"),
            ("state.new", "running"),
            ("state.old", "assigned"),
        ])
    );
}
