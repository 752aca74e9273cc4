//! The batch's validation and staging, on a store without Raft: what one
//! proposal would carry, and which object an error names.

use shoal_proto::control::BatchRequest;
use shoal_proto::objects::{Annotations, ConfigSpec, NetworkSpec, SecretSpec};
use tonic::Code;

use super::*;
use crate::store::Store;

fn annotations(name: &str) -> Option<Annotations> {
    Some(Annotations {
        name: name.into(),
        ..Default::default()
    })
}

fn config(name: &str) -> ConfigSpec {
    ConfigSpec {
        annotations: annotations(name),
        data: b"data".to_vec(),
    }
}

fn secret(name: &str) -> SecretSpec {
    SecretSpec {
        annotations: annotations(name),
        data: b"shh".to_vec(),
    }
}

fn network(name: &str, ingress: bool) -> NetworkSpec {
    NetworkSpec {
        annotations: annotations(name),
        ingress,
        ..Default::default()
    }
}

/// Validates and stages `r` on `store`; the batch's action count.
fn stage(store: &Store, r: BatchRequest) -> Result<(usize, BatchResponse), Status> {
    let prepared = Prepared::validate(r)?;
    let ids = prepared.ids();
    let (batch, ()) = store.build(|tx| prepared.stage(tx))?;
    Ok((batch.actions.len(), ids))
}

#[test]
fn a_valid_batch_is_one_store_batch_with_every_object() {
    let store = Store::new();
    let r = BatchRequest {
        secrets: vec![secret("s1")],
        configs: (0..50).map(|i| config(&format!("c{i}"))).collect(),
        networks: vec![network("net", false)],
        existing_secrets: Vec::new(),
    };
    let (actions, ids) = stage(&store, r).unwrap();
    assert_eq!(actions, 52);
    assert_eq!(ids.secret_ids.len(), 1);
    assert_eq!(ids.config_ids.len(), 50);
    assert_eq!(ids.network_ids.len(), 1);
}

#[test]
fn an_invalid_name_is_named_and_nothing_is_staged() {
    let store = Store::new();
    let r = BatchRequest {
        configs: vec![config("good"), config("bad name"), config("fine")],
        ..Default::default()
    };
    let err = stage(&store, r).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("config #1 (\"bad name\")"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("invalid config name"));
}

#[test]
fn empty_data_and_bad_drivers_are_refused() {
    let store = Store::new();
    let mut empty = secret("s");
    empty.data.clear();
    let err = stage(
        &store,
        BatchRequest {
            secrets: vec![empty],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.message().contains("secret #0 (\"s\")"), "{err:?}");
    let mut bridge = network("n", false);
    bridge.driver_config = Some(shoal_proto::objects::Driver {
        name: "bridge".into(),
        ..Default::default()
    });
    let err = stage(
        &store,
        BatchRequest {
            networks: vec![bridge],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.message().contains("not supported"), "{err:?}");
}

#[test]
fn a_name_twice_in_the_batch_is_refused() {
    let store = Store::new();
    let r = BatchRequest {
        configs: vec![config("a"), config("b"), config("a")],
        // The same name for another kind is fine.
        secrets: vec![secret("a")],
        ..Default::default()
    };
    let err = stage(&store, r).unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().starts_with("config #2 (\"a\")"), "{err:?}");
}

#[test]
fn a_name_already_stored_is_refused() {
    let store = Store::new();
    let (batch, ()) = store
        .build(|tx| {
            tx.create(new_config(config("taken")).unwrap())?;
            Ok::<_, Status>(())
        })
        .unwrap();
    store.apply(2, batch).unwrap();
    let r = BatchRequest {
        configs: vec![config("new"), config("taken")],
        ..Default::default()
    };
    let err = stage(&store, r).unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message().starts_with("config #1 (\"taken\")"),
        "{err:?}"
    );
}

#[test]
fn only_one_ingress_network() {
    let store = Store::new();
    let r = BatchRequest {
        networks: vec![network("in1", true), network("in2", true)],
        ..Default::default()
    };
    let err = stage(&store, r).unwrap_err();
    assert!(err.message().starts_with("network #1 (\"in2\")"), "{err:?}");
    assert!(err.message().contains("more than one ingress"), "{err:?}");
}

#[test]
fn too_many_objects_are_refused() {
    let r = BatchRequest {
        configs: (0..=MAX_BATCH_OBJECTS)
            .map(|i| config(&format!("c{i}")))
            .collect(),
        ..Default::default()
    };
    let err = Prepared::validate(r).unwrap_err();
    assert!(err.message().contains("split it"), "{err:?}");
}

#[test]
fn an_encrypted_network_fails_the_whole_batch() {
    let store = Store::new();
    let mut encrypted = network("secure", false);
    encrypted.driver_config = Some(shoal_proto::objects::Driver {
        name: "overlay".into(),
        options: [("encrypted".to_string(), "true".to_string())].into(),
    });
    let r = BatchRequest {
        secrets: vec![secret("s")],
        configs: vec![config("c")],
        networks: vec![network("plain", false), encrypted],
        ..Default::default()
    };
    let err = stage(&store, r).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("network #1 (\"secure\") in the batch: overlay network encryption"),
        "{}",
        err.message()
    );
    assert!(store.view(|t| t.all::<Network>().count() == 0 && t.all::<Secret>().count() == 0));
}
