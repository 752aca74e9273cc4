use shoal_proto::objects::{Annotations, Node, Secret, SecretSpec, Service, ServiceSpec, Task};

use super::*;

fn service(id: &str, name: &str) -> Service {
    Service {
        id: id.into(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn task(id: &str, service: &str, node: &str) -> Task {
    Task {
        id: id.into(),
        service_id: service.into(),
        node_id: node.into(),
        ..Default::default()
    }
}

fn rename(s: &mut Service, name: &str) {
    let spec = s.spec.get_or_insert_with(Default::default);
    spec.annotations.get_or_insert_with(Default::default).name = name.into();
}

/// Builds and applies at `index`, as a committed log entry would.
fn commit(
    store: &Store,
    index: u64,
    f: impl FnOnce(&mut Tx<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (batch, ()) = store.build(f)?;
    store.apply(index, batch)
}

#[test]
fn create_then_find_by_id_name_and_prefix() {
    let store = Store::new();
    commit(&store, 1, |tx| {
        tx.create(service("abc123", "web"))?;
        tx.create(service("abd456", "api"))
    })
    .unwrap();
    store.view(|t| {
        assert_eq!(t.find::<Service>("abc123").unwrap().id, "abc123");
        assert_eq!(t.find::<Service>("web").unwrap().id, "abc123");
        assert_eq!(t.find::<Service>("abd").unwrap().id, "abd456");
        assert!(matches!(
            t.find::<Service>("ab"),
            Err(StoreError::Ambiguous { .. })
        ));
        assert!(matches!(
            t.find::<Service>("zz"),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            t.find::<Service>(""),
            Err(StoreError::NotFound { .. }) | Err(StoreError::Ambiguous { .. })
        ));
        let stored = t.get::<Service>("abc123").unwrap();
        assert_eq!(stored.meta.as_ref().unwrap().version, 1);
        assert!(stored.meta.as_ref().unwrap().created_at.is_some());
    });
}

#[test]
fn names_are_unique_per_kind_but_not_for_nodes() {
    let store = Store::new();
    commit(&store, 1, |tx| tx.create(service("a", "web"))).unwrap();
    let err = commit(&store, 2, |tx| tx.create(service("b", "web"))).unwrap_err();
    assert_eq!(
        err,
        StoreError::NameConflict {
            kind: Kind::Service,
            name: "web".into()
        }
    );
    assert!(err.to_string().contains("\"web\" is already in use"));

    // The same name for another kind is fine.
    let secret = Secret {
        id: "s".into(),
        spec: Some(SecretSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            data: vec![],
        }),
        ..Default::default()
    };
    commit(&store, 3, |tx| tx.create(secret)).unwrap();

    let node = |id: &str| Node {
        id: id.into(),
        ..Default::default()
    };
    commit(&store, 4, |tx| {
        tx.create(node("n1"))?;
        tx.create(node("n2"))
    })
    .unwrap();
}

#[test]
fn a_stale_update_is_refused_and_changes_nothing() {
    let store = Store::new();
    commit(&store, 1, |tx| tx.create(service("a", "web"))).unwrap();
    let stale = store.view(|t| t.get::<Service>("a").unwrap().clone());

    let mut fresh = stale.clone();
    rename(&mut fresh, "web2");
    commit(&store, 2, |tx| tx.update(fresh)).unwrap();

    // Built against version 1 but the store is at 2: refused at build time...
    let mut late = stale.clone();
    late.spec
        .as_mut()
        .unwrap()
        .annotations
        .as_mut()
        .unwrap()
        .name = "web3".into();
    let err = commit(&store, 3, |tx| tx.update(late.clone())).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("update out of sequence"));

    // ...and at apply time, when another batch won the race after building.
    let store2 = Store::new();
    commit(&store2, 1, |tx| tx.create(service("a", "web"))).unwrap();
    let current = store2.view(|t| t.get::<Service>("a").unwrap().clone());
    let (batch_a, ()) = store2.build(|tx| tx.update(current.clone())).unwrap();
    let (batch_b, ()) = store2.build(|tx| tx.update(current.clone())).unwrap();
    store2.apply(2, batch_a).unwrap();
    assert!(matches!(
        store2.apply(3, batch_b),
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(
        store2.view(|t| t
            .get::<Service>("a")
            .unwrap()
            .meta
            .as_ref()
            .unwrap()
            .version),
        2
    );
    assert_eq!(
        store2.applied_index(),
        3,
        "a refused batch still consumes its index"
    );
}

#[test]
fn batches_are_all_or_nothing() {
    let store = Store::new();
    commit(&store, 1, |tx| tx.create(service("a", "web"))).unwrap();
    let (good, ()) = store.build(|tx| tx.create(service("b", "api"))).unwrap();
    let (bad, ()) = store.build(|tx| tx.create(service("c", "web2"))).unwrap();
    let mut mixed = good.clone();
    mixed.actions.extend(bad.actions);
    // Make the second action conflict with the first store object's name.
    if let Some(Object::Service(s)) = mixed.actions[1].target.as_mut() {
        s.spec.as_mut().unwrap().annotations.as_mut().unwrap().name = "web".into();
    }
    assert!(matches!(
        store.apply(2, mixed),
        Err(StoreError::NameConflict { .. })
    ));
    store.view(|t| {
        assert!(
            t.get::<Service>("b").is_none(),
            "first action must not have landed"
        )
    });
}

#[test]
fn one_object_twice_in_a_batch_is_refused() {
    let store = Store::new();
    let err = store
        .build(|tx| {
            tx.create(task("t", "s", ""))?;
            tx.create(task("t", "s", ""))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");
}

#[test]
fn task_indexes_follow_creates_moves_and_removes() {
    let store = Store::new();
    commit(&store, 1, |tx| {
        tx.create(task("t1", "s1", "n1"))?;
        tx.create(task("t2", "s1", ""))?;
        tx.create(task("t3", "s2", "n1"))
    })
    .unwrap();
    let ids = |it: &mut dyn Iterator<Item = &Task>| it.map(|t| t.id.clone()).collect::<Vec<_>>();
    store.view(|t| {
        assert_eq!(ids(&mut t.tasks_of_service("s1")), ["t1", "t2"]);
        assert_eq!(ids(&mut t.tasks_of_node("n1")), ["t1", "t3"]);
    });
    let mut t2 = store.view(|t| t.get::<Task>("t2").unwrap().clone());
    t2.node_id = "n2".into();
    commit(&store, 2, |tx| {
        tx.update(t2)?;
        tx.remove::<Task>("t1")
    })
    .unwrap();
    store.view(|t| {
        assert_eq!(ids(&mut t.tasks_of_service("s1")), ["t2"]);
        assert_eq!(ids(&mut t.tasks_of_node("n1")), ["t3"]);
        assert_eq!(ids(&mut t.tasks_of_node("n2")), ["t2"]);
    });
}

#[test]
fn watchers_see_commits_in_order_without_gaps() {
    let store = Store::new();
    commit(&store, 1, |tx| tx.create(service("a", "web"))).unwrap();
    let (count, mut rx) = store.view_and_watch(|t| t.all::<Service>().count());
    assert_eq!(count, 1);
    commit(&store, 2, |tx| tx.create(service("b", "api"))).unwrap();
    commit(&store, 3, |tx| tx.remove::<Service>("a")).unwrap();

    let first = rx.try_recv().unwrap();
    assert_eq!(
        (first.index, first.events[0].action),
        (2, EventAction::Create)
    );
    let second = rx.try_recv().unwrap();
    assert_eq!(
        (second.index, second.events[0].action),
        (3, EventAction::Remove)
    );
    assert_eq!(second.events[0].object.id(), "a");
    assert!(rx.try_recv().is_err());
}

#[test]
fn snapshot_and_restore_round_trip() {
    let store = Store::new();
    commit(&store, 5, |tx| {
        tx.create(service("a", "web"))?;
        tx.create(task("t1", "a", "n1"))
    })
    .unwrap();
    let (index, snap) = store.snapshot();
    assert_eq!(index, 5);

    let other = Store::new();
    let mut rx = other.watch();
    other.restore(index, snap.clone());
    assert!(rx.try_recv().unwrap().reset);
    assert_eq!(other.applied_index(), 5);
    assert_eq!(other.snapshot().1, snap);
    other.view(|t| {
        assert_eq!(t.find::<Service>("web").unwrap().id, "a");
        assert_eq!(t.tasks_of_node("n1").count(), 1);
    });
}

#[test]
fn a_frozen_copy_encodes_as_the_snapshot_and_ignores_later_writes() {
    use prost::Message as _;
    let store = Store::new();
    commit(&store, 5, |tx| {
        tx.create(service("a", "web"))?;
        tx.create(service("b", "db"))?;
        tx.create(task("t1", "a", "n1"))
    })
    .unwrap();
    let (index, frozen) = store.frozen();
    let (_, snap) = store.snapshot();
    commit(&store, 6, |tx| tx.create(service("c", "cache"))).unwrap();
    assert_eq!(index, 5);
    assert_eq!(
        frozen.snapshot(),
        snap,
        "later writes do not reach a frozen copy"
    );

    // As field 1 of a message: what prost writes, the objects in the
    // encoder's own order.
    let mut direct = Vec::new();
    let at = frozen.encode_snapshot_field(1, &mut direct);
    let decoded = decode_field(1, &direct[at..]);
    assert_eq!(decoded.tasks, snap.tasks);
    assert_eq!(sorted(decoded), sorted(snap.clone()));
    assert!(!snap.encode_to_vec().is_empty());
}

#[test]
fn snapshot_encoding_matches_prost_at_every_length_and_offset() {
    // Empty, and lengths whose varint takes 1, 2 and 3 bytes; after bytes
    // already in the buffer; with a one- and a two-byte field key.
    let store = Store::new();
    let mut index = 0;
    for objects in [0usize, 1, 40, 400] {
        while store.view(|t| t.all::<Service>().count()) < objects {
            index += 1;
            let id = format!("s{index:04}");
            commit(&store, index, |tx| tx.create(service(&id, &id))).unwrap();
        }
        let (_, frozen) = store.frozen();
        let (_, snap) = store.snapshot();
        for (tag, prefix) in [(1, &b""[..]), (1, b"abc"), (300, b"x")] {
            let mut direct = prefix.to_vec();
            let at = frozen.encode_snapshot_field(tag, &mut direct);
            assert!(
                direct[prefix.len()..at].iter().all(|&b| b == 0),
                "room only"
            );
            direct.drain(prefix.len()..at);
            // The same objects in the same field; the encoder's order is
            // its own (memory order), so compare them sorted.
            let mut expected = prefix.to_vec();
            prost::encoding::message::encode(tag, &snap, &mut expected);
            assert_eq!(direct.len(), expected.len(), "{objects} objects, tag {tag}");
            assert_eq!(direct[..prefix.len()], expected[..prefix.len()]);
            let decoded = decode_field(tag, &direct[prefix.len()..]);
            assert_eq!(sorted(decoded), sorted(snap.clone()), "{objects} objects");
            assert!(objects < 400 || expected.len() > 1 << 14, "a 3-byte length");
        }
    }
}

/// The `StoreSnapshot` in message field `tag` (its key and length, then
/// the message: nothing before or after).
fn decode_field(tag: u32, mut field: &[u8]) -> StoreSnapshot {
    use prost::Message as _;
    let (got, wire) = prost::encoding::decode_key(&mut field).unwrap();
    assert_eq!(
        (got, wire),
        (tag, prost::encoding::WireType::LengthDelimited)
    );
    let len = prost::encoding::decode_varint(&mut field).unwrap();
    assert_eq!(len as usize, field.len(), "the length covers the rest");
    StoreSnapshot::decode(field).unwrap()
}

/// `snap` with its services (all these tests store) in id order.
fn sorted(mut snap: StoreSnapshot) -> StoreSnapshot {
    snap.services.sort_by(|a, b| a.id.cmp(&b.id));
    snap
}

#[test]
fn the_digest_depends_on_the_objects_not_on_the_order_they_came_in() {
    // A follower restored from a snapshot inserts in the snapshot's order,
    // the leader in the order of its writes: their digests must agree.
    let leader = Store::new();
    for k in 0..3000u64 {
        let id = format!("c{k:05}");
        commit(&leader, k + 1, |tx| tx.create(service(&id, &id))).unwrap();
    }
    let (index, mut snap) = leader.snapshot();
    snap.services.reverse();
    let reversed = Store::new();
    reversed.restore(index, snap.clone());
    snap.services.sort_by(|a, b| a.id.cmp(&b.id));
    let sorted = Store::new();
    sorted.restore(index, snap);
    assert_ne!(
        reversed.snapshot().1.services,
        sorted.snapshot().1.services,
        "a table's walk order follows its inserts"
    );
    assert_eq!(leader.digest(), reversed.digest());
    assert_eq!(leader.digest(), sorted.digest());

    commit(&sorted, index + 1, |tx| tx.create(service("one more", "x"))).unwrap();
    assert_ne!(leader.digest().1, sorted.digest().1);
}

#[test]
fn events_share_the_stored_object_and_a_rename_frees_the_old_name() {
    let store = Store::new();
    let mut watch = store.watch();
    commit(&store, 1, |tx| tx.create(service("a", "web"))).unwrap();
    let created = watch.try_recv().unwrap();
    let Changed::Service(shared) = &created.events[0].object else {
        panic!("a service event");
    };
    store.view(|t| {
        let stored = t.get::<Service>("a").unwrap();
        assert!(
            std::ptr::eq(&**shared, stored),
            "the event is the table's own copy"
        );
    });

    // A rename replaces the object under its id and moves its name.
    let mut renamed = store.view(|t| t.get::<Service>("a").cloned()).unwrap();
    rename(&mut renamed, "api");
    commit(&store, 2, |tx| tx.update(renamed)).unwrap();
    store.view(|t| {
        assert_eq!(t.all::<Service>().count(), 1);
        assert_eq!(t.get::<Service>("a").unwrap().version(), 2);
        assert!(t.get_by_name::<Service>("web").is_none());
        assert_eq!(t.get_by_name::<Service>("api").unwrap().id, "a");
    });
    assert_eq!(shared.version(), 1, "an event keeps the object as it was");
    commit(&store, 3, |tx| tx.create(service("b", "web"))).unwrap();

    commit(&store, 4, |tx| tx.remove::<Service>("a")).unwrap();
    store.view(|t| {
        assert!(t.get::<Service>("a").is_none());
        assert!(t.get_by_name::<Service>("api").is_none());
        assert_eq!(t.all::<Service>().count(), 1);
    });
}

#[test]
fn a_name_finds_the_object_as_it_is_now_through_growth_and_removal() {
    let store = Store::new();
    // Enough names that the index doubles many times.
    for chunk in 0..40u64 {
        commit(&store, chunk + 1, |tx| {
            (0..100).try_for_each(|i| {
                let n = chunk * 100 + i;
                tx.create(service(&format!("id{n}"), &format!("svc{n}")))
            })
        })
        .unwrap();
    }
    // An update that keeps the name: the name finds the new version.
    let updated = store.view(|t| t.get::<Service>("id7").cloned()).unwrap();
    commit(&store, 50, |tx| tx.update(updated)).unwrap();
    // Every other one removed, then one name taken by a new object.
    commit(&store, 51, |tx| {
        (0..4000)
            .step_by(2)
            .try_for_each(|n| tx.remove::<Service>(&format!("id{n}")))
    })
    .unwrap();
    commit(&store, 52, |tx| tx.create(service("fresh", "svc0"))).unwrap();
    store.view(|t| {
        assert_eq!(t.get_by_name::<Service>("svc7").unwrap().version(), 50);
        for n in 1..4000 {
            let found = t.get_by_name::<Service>(&format!("svc{n}"));
            match n % 2 {
                0 => assert!(found.is_none(), "svc{n} was removed"),
                _ => assert_eq!(found.unwrap().id, format!("id{n}")),
            }
        }
        assert_eq!(t.get_by_name::<Service>("svc0").unwrap().id, "fresh");
    });
}

#[test]
fn a_batch_is_cut_into_parts_in_order_and_each_applies_alone() {
    let store = Store::new();
    let count = 2 * MAX_TASK_WRITES + 1;
    let (batch, ()) = store
        .build(|tx| (0..count).try_for_each(|i| tx.create(task(&format!("t{i:05}"), "s", ""))))
        .unwrap();
    let parts = parts(batch, MAX_TASK_WRITES);
    let sizes: Vec<usize> = parts.iter().map(|p| p.actions.len()).collect();
    assert_eq!(sizes, vec![MAX_TASK_WRITES, MAX_TASK_WRITES, 1]);
    for (i, part) in parts.into_iter().enumerate() {
        store.apply(i as u64 + 1, part).unwrap();
    }
    assert_eq!(store.view(|t| t.tasks_of_service("s").count()), count);
    assert!(super::parts(StoreBatch::default(), 10).is_empty());
}
