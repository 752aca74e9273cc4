//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz; run them
//! with `fuzz/run.sh`). Not an API: nothing else calls these, and they may
//! change with the targets. They live here, not in `fuzz/`, because they
//! reach what the manager keeps private (the WAL, snapshot files, the
//! node's apply side), and so that `cargo test` runs each one on its seeds
//! and `clippy` checks them with the rest.
//!
//! Each takes the fuzzer's bytes, feeds them to the code a manager runs on
//! what it reads from disk or receives from a peer or a worker, and panics
//! only where that code would (or where what must hold does not).
//! [`seeds`] gives each target inputs that reach deep, to start a corpus.

use std::path::Path;
use std::sync::OnceLock;

use prost::Message as _;
use rustls::pki_types::CertificateDer;
use shoal_proto::ca::IssueNodeCertificateRequest;
use shoal_proto::dispatcher::{
    AssignmentsRequest, HeartbeatRequest, NetworksRequest, SessionRequest, TaskStatusUpdate,
    UpdateTaskStatusRequest,
};
use shoal_proto::identity::{NodeIdentity, NodeKey, NodeRole};
use shoal_proto::logs::PublishLogsMessage;
use shoal_proto::objects::{
    self, Endpoint, EndpointSpec, NodeDescription, PortConfig, Task, TaskState, TaskStatus,
};
use shoal_proto::raft::SnapshotData;
use shoal_proto::tls;
use shoal_proto::token::{CaDigest, JoinToken};

use crate::ca::{JoinTokens, RootCa};
use crate::dispatcher::bounds;
use crate::seal::DataKey;
use crate::store::{MAX_TASK_WRITES, Store};

pub use crate::raft::fuzzing::peer_messages as raft_peer_message;
pub use crate::raft::storage::fuzzing::wal_replay;

/// The data key the storage targets seal with (one per process: inputs
/// are plaintext, sealed as they are written).
pub fn data_key() -> &'static DataKey {
    static KEY: OnceLock<DataKey> = OnceLock::new();
    KEY.get_or_init(DataKey::generate)
}

/// A cluster's CA, join tokens and one node's key, certificate and CSR.
struct Pki {
    ca: RootCa,
    tokens: JoinTokens,
    key: NodeKey,
    identity: NodeIdentity,
    cert_der: Vec<u8>,
    cert_pem: String,
    csr_pem: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = RootCa::generate("cluster0").expect("a root CA");
        let key = NodeKey::generate().expect("a node key");
        let csr_pem = key.csr_pem().expect("a CSR");
        let identity = NodeIdentity {
            node_id: "node0".into(),
            role: NodeRole::Worker,
            cluster_id: "cluster0".into(),
        };
        let cert_pem = ca
            .issue(
                &csr_pem,
                &identity,
                &[],
                crate::ca::DEFAULT_NODE_CERT_EXPIRY,
            )
            .expect("a node certificate");
        let cert_der = tls::certs_from_pem(&cert_pem).expect("PEM")[0].to_vec();
        Pki {
            tokens: JoinTokens::generate(ca.digest()),
            ca,
            key,
            identity,
            cert_der,
            cert_pem,
            csr_pem,
        }
    })
}

fn pem_of(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

/// `join_token`: a token a joining node presents (UTF-8 text), parsed and
/// judged by the CA's tokens. What parses prints back as it was given,
/// and so does a CA digest.
pub fn join_token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = text.parse::<JoinToken>() {
        let printed = token.to_string();
        assert_eq!(printed, text.trim(), "a token does not print as given");
        assert_eq!(printed.parse::<JoinToken>().ok(), Some(token));
    }
    if let Ok(digest) = text.parse::<CaDigest>() {
        assert_eq!(digest.to_string().parse::<CaDigest>().ok(), Some(digest));
    }
    let _ = pki().tokens.role_for(text);
    let _ = text.parse::<NodeRole>();
}

/// `certificate`: what a manager reads from certificates and CSRs that
/// others present. The first byte picks the reader:
/// - `0`: DER as a TLS peer's certificate: its identity, its verification
///   against the cluster root, a renewal proof over it;
/// - `1`: the same DER in PEM, as node credentials hold it;
/// - `2`: PEM text for the certificate and key readers;
/// - `3`: DER as a CSR (in PEM) a joining node sends the CA, which issues
///   a certificate for it: what the CA issues names whom it was issued for
///   and verifies;
/// - `4`: the text as a CSR PEM;
/// - `5`: node credentials on disk (key, certificate, roots split at NUL).
pub fn certificate(dir: &Path, data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let pki = pki();
    let roots = [CertificateDer::from(pki.ca.cert_der().to_vec())];
    match mode % 6 {
        0 => {
            let _ = NodeIdentity::from_cert_der(body);
            let der = CertificateDer::from(body);
            let _ = tls::peer_identity(std::slice::from_ref(&der));
            let _ = tls::verify_node_certificate(&roots, &der);
            let _ = pki.key.matches_cert(body);
            let csr = pki.csr_pem.as_bytes();
            let proof = pki.key.sign_renewal(csr).expect("sign a renewal");
            let _ = shoal_proto::identity::verify_renewal(body, csr, &proof);
            let _ = shoal_proto::identity::verify_renewal(&pki.cert_der, body, body);
        }
        1 => {
            let text = pem_of("CERTIFICATE", body);
            let creds = shoal_proto::credentials::NodeCredentials {
                key_pem: pki.key.to_pem(),
                cert_pem: text.clone(),
                roots_pem: text,
            };
            let _ = creds.identity();
            let _ = creds.validity();
            let _ = creds.roots();
            let _ = creds.client_config();
        }
        2 => {
            let text = String::from_utf8_lossy(body);
            let _ = tls::certs_from_pem(&text);
            let _ = tls::key_from_pem(&text);
            let _ = NodeKey::from_pem(&text);
        }
        3 | 4 => {
            let csr = if mode % 6 == 3 {
                pem_of("CERTIFICATE REQUEST", body)
            } else {
                String::from_utf8_lossy(body).into_owned()
            };
            let expiry = crate::ca::DEFAULT_NODE_CERT_EXPIRY;
            if let Ok(issued) = pki.ca.issue(&csr, &pki.identity, &[], expiry) {
                let der = tls::certs_from_pem(&issued).expect("the CA issues PEM");
                assert_eq!(der.len(), 1, "the CA issues one certificate");
                let who = tls::verify_node_certificate(&roots, &der[0])
                    .expect("what the CA issues verifies");
                assert_eq!(who, pki.identity, "the CA issued for someone else");
            }
        }
        _ => {
            let mut parts = body.splitn(3, |&b| b == 0);
            let creds = dir.join("certificates");
            let _ = std::fs::remove_dir_all(&creds);
            std::fs::create_dir_all(&creds).expect("create the credentials directory");
            for name in ["node.key", "node.crt", "root-ca.crt"] {
                let part = parts.next().unwrap_or_default();
                std::fs::write(creds.join(name), part).expect("write a credential");
            }
            let _ = shoal_proto::credentials::NodeCredentials::load(&creds);
        }
    }
}

/// `snapshot_decode`: a snapshot as a manager restores it, then log
/// entries applied on top. The first byte picks where the snapshot comes
/// from: even, the data of a snapshot from the leader (u16 LE length,
/// the `SnapshotData` bytes, then entries, each u16 LE length and an
/// entry's data); odd, a sealed snapshot file (the rest: see
/// `raft::storage::fuzzing::snapshot_file`) and no entries.
///
/// What must hold: restoring what the store snapshots gives the same
/// store (by digest), before and after the entries, and every task is
/// found through the indexes by its service and node.
pub fn snapshot_decode(dir: &Path, data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        match next(&mut rest) {
            Some(b) => b,
            None => return,
        }
    } else {
        let Some(bytes) = crate::raft::storage::fuzzing::snapshot_file(dir, data_key(), rest)
        else {
            return;
        };
        rest = &[];
        bytes
    };
    let Ok(snapshot) = SnapshotData::decode(&bytes[..]) else {
        return;
    };
    let store = Store::new();
    let index = 10;
    store.restore(index, snapshot.store.unwrap_or_default());
    check_store(&store);
    let mut at = index;
    while let Some(entry) = next(&mut rest) {
        at += 1;
        crate::raft::fuzzing::apply_entry(&store, at, &entry);
    }
    check_store(&store);
}

/// A u16 LE length and that many bytes (or what is left) off `rest`.
fn next(rest: &mut &[u8]) -> Option<Vec<u8>> {
    let n = match rest {
        [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
        _ => return None,
    };
    let body = &rest[2..];
    let (head, tail) = body.split_at(n.min(body.len()));
    *rest = tail;
    Some(head.to_vec())
}

fn check_store(store: &Store) {
    let (index, objects) = store.snapshot();
    let again = Store::new();
    again.restore(index, objects);
    assert_eq!(
        again.digest(),
        store.digest(),
        "a store restored from its own snapshot differs"
    );
    store.view(|t| {
        for task in t.all::<Task>() {
            assert!(
                t.tasks_of_service(&task.service_id)
                    .any(|x| x.id == task.id),
                "task {:?} is not indexed by its service",
                task.id
            );
            assert!(
                task.node_id.is_empty() || t.tasks_of_node(&task.node_id).any(|x| x.id == task.id),
                "task {:?} is not indexed by its node",
                task.id
            );
        }
    });
}

/// The node whose certificate the worker targets' messages come with.
const WORKER: &str = "node-a";

fn task(id: &str, node: &str, state: TaskState, ports: usize) -> Task {
    Task {
        id: id.into(),
        service_id: "svc".into(),
        node_id: node.into(),
        status: Some(TaskStatus {
            state: state as i32,
            message: "started".into(),
            ..Default::default()
        }),
        desired_state: TaskState::Running as i32,
        endpoint: Some(Endpoint {
            spec: Some(EndpointSpec {
                ports: vec![PortConfig::default(); ports],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The store a leader holds: two nodes and tasks on both.
fn worker_store() -> Store {
    let store = Store::new();
    let (batch, ()) = store
        .build(|tx| {
            for id in [WORKER, "node-b"] {
                tx.create(objects::Node {
                    id: id.into(),
                    ..Default::default()
                })?;
            }
            tx.create(task("t1", WORKER, TaskState::Running, 2))?;
            tx.create(task("t2", WORKER, TaskState::Assigned, 0))?;
            tx.create(task("t3", WORKER, TaskState::Complete, 1))?;
            tx.create(task("t4", "node-b", TaskState::Running, 1))?;
            Ok::<_, crate::store::StoreError>(())
        })
        .expect("the fixture builds");
    store.apply(1, batch).expect("the fixture applies");
    store
}

/// Largest a task's status may be once the dispatcher has cut it (each
/// of the fixture's tasks publishes at most two ports).
const MAX_STATUS_BYTES: usize = 8 * 1024;
/// Largest a node's description may be once it is cut.
const MAX_DESCRIPTION_BYTES: usize = 96 * 1024;

/// `worker_messages`: what a manager accepts from a worker (`node-a` by
/// its certificate). The first byte picks the message, the rest is its
/// protobuf encoding:
/// - `0`: `SessionRequest`, whose node description is cut to its bounds
///   and stored;
/// - `1`: `UpdateTaskStatusRequest`, folded into the store as the
///   dispatcher's batcher does;
/// - `2`: `IssueNodeCertificateRequest` (a joining node): its token
///   judged, its CSR issued;
/// - `3`: the requests that carry only ids (`Heartbeat`, `Assignments`,
///   `Networks`) and `PublishLogsMessage`.
///
/// What must hold: what is stored is within its bounds, cutting twice
/// cuts nothing more, the batch built from a worker's message applies,
/// no task moves backwards and no other node's task changes.
pub fn worker_message(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            let Ok(request) = SessionRequest::decode(body) else {
                return;
            };
            let Some(mut description) = request.description else {
                return;
            };
            bounds::description(&mut description);
            check_description(&description);
            let store = worker_store();
            let (batch, ()) = store
                .build(|tx| {
                    let mut node = tx
                        .tables()
                        .get::<objects::Node>(WORKER)
                        .cloned()
                        .expect("the node");
                    node.description = Some(description.clone());
                    tx.update(node)
                })
                .expect("a session's node update builds");
            store
                .apply(2, batch)
                .expect("a session's node update applies");
        }
        1 => {
            let Ok(request) = UpdateTaskStatusRequest::decode(body) else {
                return;
            };
            update_task_status(&request.updates);
        }
        2 => {
            let Ok(request) = IssueNodeCertificateRequest::decode(body) else {
                return;
            };
            let pki = pki();
            let _ = pki.tokens.role_for(&request.token);
            let csr = String::from_utf8_lossy(&request.csr);
            let _ = pki.ca.issue(
                &csr,
                &pki.identity,
                &[],
                crate::ca::DEFAULT_NODE_CERT_EXPIRY,
            );
            let _ =
                shoal_proto::identity::verify_renewal(&pki.cert_der, &request.csr, &request.proof);
        }
        _ => {
            let _ = HeartbeatRequest::decode(body);
            let _ = AssignmentsRequest::decode(body);
            let _ = NetworksRequest::decode(body);
            let _ = PublishLogsMessage::decode(body);
        }
    }
}

fn check_description(d: &NodeDescription) {
    let mut again = d.clone();
    assert!(
        bounds::description(&mut again).is_empty(),
        "a cut description is cut again"
    );
    assert!(
        d.encoded_len() <= MAX_DESCRIPTION_BYTES,
        "a cut description weighs {} bytes",
        d.encoded_len()
    );
}

fn update_task_status(updates: &[TaskStatusUpdate]) {
    let store = worker_store();
    let before: Vec<Task> = store.view(|t| t.all::<Task>().cloned().collect());
    let reports: Vec<(&str, &TaskStatusUpdate)> = updates.iter().map(|u| (WORKER, u)).collect();
    let mut index = 1;
    for part in reports.chunks(MAX_TASK_WRITES) {
        let (batch, ()) = store
            .build(|tx| crate::dispatcher::status::fold(tx, part))
            .expect("a worker's reports build");
        index += 1;
        store.apply(index, batch).expect("a worker's reports apply");
    }
    for old in before {
        let new = store.view(|t| t.get::<Task>(&old.id).cloned().expect("tasks stay"));
        if old.node_id != WORKER {
            assert_eq!(new, old, "another node's task changed");
            continue;
        }
        let (was, is) = (
            shoal_proto::task_state::observed(&old),
            shoal_proto::task_state::observed(&new),
        );
        assert!(
            is >= was,
            "task {} went from {was:?} back to {is:?}",
            old.id
        );
        if new.status != old.status {
            let status = new.status.as_ref().expect("a status");
            let mut again = status.clone();
            assert!(
                bounds::status(&new, &mut again).is_empty(),
                "a cut status is cut again"
            );
            assert!(
                status.encoded_len() <= MAX_STATUS_BYTES,
                "a stored status weighs {} bytes",
                status.encoded_len()
            );
        }
    }
}

/// Inputs that reach deep into each target, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let pki = pki();
    let token = pki.tokens.worker.to_string().into_bytes();
    let cert = [vec![0], pki.cert_der.clone()].concat();
    let cert_pem = [vec![2], pki.cert_pem.clone().into_bytes()].concat();
    let csr_der = pem::parse(&pki.csr_pem)
        .expect("the CSR PEM")
        .into_contents();
    let csr = [vec![3], csr_der].concat();
    let creds = [
        vec![5],
        pki.key.to_pem().into_bytes(),
        vec![0],
        pki.cert_pem.clone().into_bytes(),
        vec![0],
        pem_of("CERTIFICATE", pki.ca.cert_der()).into_bytes(),
    ]
    .concat();

    let data = crate::raft::fuzzing::snapshot_data();
    let mut plain = vec![0];
    plain.extend_from_slice(&(data.len() as u16).to_le_bytes());
    plain.extend_from_slice(&data);
    let entry = crate::raft::fuzzing::create_service(7, "extra");
    plain.extend_from_slice(&(entry.len() as u16).to_le_bytes());
    plain.extend_from_slice(&entry);
    let mut snapshots = vec![plain];
    for sealed in crate::raft::storage::fuzzing::snapshot_file_seeds(&data) {
        snapshots.push([vec![1], sealed].concat());
    }

    let session = SessionRequest {
        description: Some(NodeDescription {
            hostname: "node-a".into(),
            platform: Some(objects::Platform {
                architecture: "x86_64".into(),
                os: "linux".into(),
            }),
            engine: Some(objects::EngineDescription {
                kind: "process".into(),
                version: "0.1.0".into(),
                labels: [("zone".to_string(), "a".to_string())].into(),
            }),
            ..Default::default()
        }),
        session_id: String::new(),
    };
    let status = UpdateTaskStatusRequest {
        session_id: "s".into(),
        updates: vec![
            TaskStatusUpdate {
                task_id: "t2".into(),
                status: Some(TaskStatus {
                    state: TaskState::Running as i32,
                    message: "started".into(),
                    ports: vec![PortConfig::default()],
                    ..Default::default()
                }),
            },
            TaskStatusUpdate {
                task_id: "t1".into(),
                status: Some(TaskStatus {
                    state: TaskState::Failed as i32,
                    err: "exit 1".into(),
                    ..Default::default()
                }),
            },
        ],
    };
    let join = IssueNodeCertificateRequest {
        csr: pki.csr_pem.clone().into_bytes(),
        token: pki.tokens.manager.to_string(),
        ..Default::default()
    };
    let worker = vec![
        [vec![0], session.encode_to_vec()].concat(),
        [vec![1], status.encode_to_vec()].concat(),
        [vec![2], join.encode_to_vec()].concat(),
    ];

    vec![
        ("join_token", vec![token]),
        ("certificate", vec![cert, cert_pem, csr, creds]),
        ("wal_replay", crate::raft::storage::fuzzing::wal_seeds()),
        ("snapshot_decode", snapshots),
        ("raft_peer_message", crate::raft::fuzzing::seeds()),
        ("worker_messages", worker),
    ]
}

/// Runs target `name` on `data` (`dir`: a scratch directory of its own).
pub fn run(name: &str, dir: &Path, data: &[u8]) {
    match name {
        "join_token" => join_token(data),
        "certificate" => certificate(dir, data),
        "wal_replay" => wal_replay(dir, data_key(), data),
        "snapshot_decode" => snapshot_decode(dir, data),
        "raft_peer_message" => raft_peer_message(data),
        "worker_messages" => worker_message(data),
        other => panic!("no fuzz target {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target takes its seeds (and a few odd inputs) without a panic.
    #[test]
    fn every_target_takes_its_seeds() {
        for (name, inputs) in seeds() {
            assert!(!inputs.is_empty(), "{name} has no seeds");
            for data in inputs
                .iter()
                .map(Vec::as_slice)
                .chain([&[][..], &[0][..], &[1; 64][..]])
            {
                let dir = tempfile::tempdir().expect("tempdir");
                run(name, dir.path(), data);
            }
        }
    }

    /// Writes the seeds into `fuzz/corpus/<target>/` (run by hand after a
    /// format change: `cargo test -p shoal-manager --lib fuzzing::tests::write_seeds
    /// -- --ignored`).
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_seeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        for (name, inputs) in seeds() {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).expect("create a corpus directory");
            for (i, data) in inputs.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), data).expect("write a seed");
            }
        }
    }
}
