//! The agent against a fake dispatcher on loopback: a tonic server with a
//! throwaway self-signed certificate, and a client config that accepts any
//! server certificate (what is tested here is the session, not the PKI,
//! which `shoal_proto::tls` tests).

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use shoal_proto::dispatcher::dispatcher_server::{Dispatcher, DispatcherServer};
use shoal_proto::dispatcher::{
    AssignmentsMessage, HeartbeatResponse, NetworkView, SessionMessage, UpdateTaskStatusResponse,
    WeightedPeer,
};
use shoal_proto::objects::{Task, TaskState};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::*;

/// A throwaway P-256 certificate and key (self-signed, valid to 2126),
/// only ever used on loopback by these tests.
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBpTCCAUugAwIBAgIUR3oT49ZfCnZKTa0Mg/PeHaoGyBswCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPdGVzdCBkaXNwYXRjaGVyMCAXDTI2MTIwNzE5NDkyNVoYDzIx
MjYxMTEzMTk0OTI1WjAaMRgwFgYDVQQDDA90ZXN0IGRpc3BhdGNoZXIwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQCZrQ+u/LCHRVnInRBT5XVjCf5XN28LRUEfp2R
03lqd+bab/TKI+3UlmeD0JFX6P1Asz7qHR1eUbN6Lf0ZmvGvo20wazAdBgNVHQ4E
FgQU4hSrRrprHq07RpAXgA+2oa+9tXYwHwYDVR0jBBgwFoAU4hSrRrprHq07RpAX
gA+2oa+9tXYwDwYDVR0TAQH/BAUwAwEB/zAYBgNVHREEETAPgg1tYW5hZ2VyLnNo
b2FsMAoGCCqGSM49BAMCA0gAMEUCIQDZ90U9PJk0m/ZP3NXNMfU274v1WkwRGIS0
QcyvVMrI3AIgEOzTTzROwP5X4wq8L8T58+LFDDvXEBw/OnbWo6aGw10=
-----END CERTIFICATE-----
";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYrPn1XdX5nuvgTIA
IcHZ64s3D5crlT0aevSRMvETF4GhRANCAAQCZrQ+u/LCHRVnInRBT5XVjCf5XN28
LRUEfp2R03lqd+bab/TKI+3UlmeD0JFX6P1Asz7qHR1eUbN6Lf0ZmvGv
-----END PRIVATE KEY-----
";

/// Real time: these tests talk TCP. Anything they wait for comes in
/// milliseconds; this only bounds a failure.
const PATIENCE: Duration = Duration::from_secs(5);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_tls() -> shoal_proto::net::ServerTls {
    let certs = shoal_proto::tls::certs_from_pem(CERT).unwrap();
    let key = shoal_proto::tls::key_from_pem(KEY).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    shoal_proto::net::ServerTls::new(Arc::new(config))
}

/// Accepts any server certificate; signatures are still checked.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_tls() -> ClientTls {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    ClientTls::new(Arc::new(config))
}

/// A dispatcher: a leader that opens sessions, or a follower that names
/// the leader.
struct Fake {
    addr: String,
    /// Set on a follower: where it sends the agent.
    leader: Option<String>,
    sessions: Arc<Mutex<usize>>,
    /// What the leader hands out on the assignment stream.
    assignments: Vec<AssignmentsMessage>,
    /// The status updates it received.
    updates: mpsc::UnboundedSender<UpdateTaskStatusRequest>,
    /// Keeps the server streams open.
    open: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

fn leader_status(leader: &str) -> Status {
    let mut status = Status::unavailable("not the leader");
    status
        .metadata_mut()
        .insert("shoal-leader", leader.parse().unwrap());
    status
}

#[tonic::async_trait]
impl Dispatcher for Fake {
    type SessionStream = ReceiverStream<Result<SessionMessage, Status>>;
    type AssignmentsStream = ReceiverStream<Result<AssignmentsMessage, Status>>;
    type NetworksStream = ReceiverStream<Result<NetworkView, Status>>;

    async fn session(
        &self,
        _: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        *self.sessions.lock().unwrap() += 1;
        if let Some(leader) = &self.leader {
            return Err(leader_status(leader));
        }
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(SessionMessage {
            session_id: "s1".into(),
            managers: vec![WeightedPeer {
                node_id: "m1".into(),
                addr: self.addr.clone(),
                weight: 1,
            }],
            ..Default::default()
        }))
        .await
        .unwrap();
        self.open.lock().unwrap().push(Box::new(tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Ok(Response::new(HeartbeatResponse {
            period: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
        }))
    }

    async fn update_task_status(
        &self,
        request: Request<UpdateTaskStatusRequest>,
    ) -> Result<Response<UpdateTaskStatusResponse>, Status> {
        let _ = self.updates.send(request.into_inner());
        Ok(Response::new(UpdateTaskStatusResponse {}))
    }

    async fn assignments(
        &self,
        _: Request<AssignmentsRequest>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        for m in &self.assignments {
            tx.send(Ok(m.clone())).await.unwrap();
        }
        self.open.lock().unwrap().push(Box::new(tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn networks(
        &self,
        _: Request<NetworksRequest>,
    ) -> Result<Response<Self::NetworksStream>, Status> {
        Err(Status::unimplemented("no data plane here"))
    }
}

struct Served {
    addr: String,
    sessions: Arc<Mutex<usize>>,
    updates: mpsc::UnboundedReceiver<UpdateTaskStatusRequest>,
    _stop: tokio_util::sync::DropGuard,
}

async fn serve(leader: Option<String>, assignments: Vec<AssignmentsMessage>) -> Served {
    shoal_proto::tls::install_default_provider();
    let stop = CancellationToken::new();
    let (addr, incoming) =
        shoal_proto::net::tls_incoming("127.0.0.1:0".parse().unwrap(), server_tls(), stop.clone())
            .await
            .unwrap();
    let (tx, updates) = mpsc::unbounded_channel();
    let sessions = Arc::new(Mutex::new(0));
    let fake = Fake {
        addr: addr.to_string(),
        leader,
        sessions: sessions.clone(),
        assignments,
        updates: tx,
        open: Mutex::new(Vec::new()),
    };
    let server = tonic::transport::Server::builder()
        .add_service(DispatcherServer::new(fake))
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
    tokio::spawn(server);
    Served {
        addr: addr.to_string(),
        sessions,
        updates,
        _stop: stop.drop_guard(),
    }
}

/// A running agent and its ends.
struct Agent {
    worker: mpsc::Receiver<crate::worker::Command>,
    state: watch::Receiver<SessionState>,
    reports: mpsc::UnboundedSender<crate::task::Report>,
    shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<()>,
}

/// The agent's reports channel, for reports made before it starts.
fn reports() -> (
    mpsc::UnboundedSender<crate::task::Report>,
    mpsc::UnboundedReceiver<crate::task::Report>,
) {
    mpsc::unbounded_channel()
}

fn start(
    managers: Vec<String>,
    (reports, reports_rx): (
        mpsc::UnboundedSender<crate::task::Report>,
        mpsc::UnboundedReceiver<crate::task::Report>,
    ),
) -> Agent {
    let (worker_tx, worker) = mpsc::channel(16);
    let (state_tx, state) = watch::channel(SessionState::default());
    let shutdown = CancellationToken::new();
    let config = AgentConfig {
        managers,
        tls: client_tls(),
        description: NodeDescription::default(),
        worker: worker_tx,
        networks: Arc::new(watch::channel(None).0),
    };
    let agent = tokio::spawn(run(config, state_tx, reports_rx, shutdown.clone()));
    Agent {
        worker,
        state,
        reports,
        shutdown,
        agent,
    }
}

impl Agent {
    async fn session_with(&mut self, addr: &str) {
        let mut state = self.state.clone();
        tokio::time::timeout(
            PATIENCE,
            state.wait_for(|s| s.manager.as_deref() == Some(addr)),
        )
        .await
        .unwrap_or_else(|_| panic!("no session with {addr}: {:?}", *self.state.borrow()))
        .unwrap();
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.agent)
            .await
            .expect("the agent ends on shutdown")
            .unwrap();
    }
}

fn status(state: TaskState) -> TaskStatus {
    let mut s = TaskStatus::default();
    s.set_state(state);
    s
}

async fn next_update(served: &mut Served) -> UpdateTaskStatusRequest {
    tokio::time::timeout(PATIENCE, served.updates.recv())
        .await
        .expect("a status update")
        .unwrap()
}

#[test]
fn the_leader_hint_comes_from_the_status_metadata() {
    assert_eq!(
        leader_hint(&leader_status("10.0.0.2:2377")).as_deref(),
        Some("10.0.0.2:2377")
    );
    assert_eq!(leader_hint(&Status::unavailable("down")), None);
}

#[tokio::test]
async fn with_no_manager_to_ask_the_agent_ends_at_once() {
    let a = start(vec![], reports());
    tokio::time::timeout(PATIENCE, a.agent)
        .await
        .expect("ends")
        .unwrap();
}

#[tokio::test]
async fn a_session_forwards_assignments_and_flushes_reports_newest_per_task() {
    let mut set = AssignmentsMessage {
        results_in: 7,
        ..Default::default()
    };
    set.changes.push(shoal_proto::dispatcher::AssignmentChange {
        assignment: Some(shoal_proto::dispatcher::Assignment {
            item: Some(shoal_proto::dispatcher::assignment::Item::Task(Task {
                id: "t1".into(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    });
    let mut leader = serve(None, vec![set.clone()]).await;
    // Reports made before any session wait for one; only the newest of a
    // task goes.
    let early = reports();
    early
        .0
        .send(("t1".into(), status(TaskState::Starting)))
        .unwrap();
    early
        .0
        .send(("t1".into(), status(TaskState::Running)))
        .unwrap();
    let mut a = start(vec![leader.addr.clone()], early);
    a.session_with(&leader.addr).await;
    assert_eq!(a.state.borrow().managers, vec![leader.addr.clone()]);

    let got = tokio::time::timeout(PATIENCE, a.worker.recv())
        .await
        .expect("assignments reach the worker")
        .unwrap();
    match got {
        crate::worker::Command::Assignments(m) => assert_eq!(m, set),
        other => panic!("{other:?}"),
    }

    let first = next_update(&mut leader).await;
    assert_eq!(first.session_id, "s1");
    let sent: Vec<_> = first
        .updates
        .iter()
        .map(|u| (u.task_id.as_str(), u.status.as_ref().unwrap().state()))
        .collect();
    assert_eq!(sent, [("t1", TaskState::Running)]);

    // A report made during the session goes at once.
    a.reports
        .send(("t2".into(), status(TaskState::Failed)))
        .unwrap();
    let next = next_update(&mut leader).await;
    assert_eq!(next.updates.len(), 1);
    assert_eq!(next.updates[0].task_id, "t2");

    assert_eq!(*leader.sessions.lock().unwrap(), 1);
    a.stop().await;
}

#[tokio::test]
async fn a_follower_sends_the_agent_to_the_leader() {
    let leader = serve(None, vec![]).await;
    let follower = serve(Some(leader.addr.clone()), vec![]).await;
    let mut a = start(vec![follower.addr.clone()], reports());
    a.session_with(&leader.addr).await;
    assert_eq!(*follower.sessions.lock().unwrap(), 1);
    assert_eq!(*leader.sessions.lock().unwrap(), 1);
    // The dispatcher's manager list replaces the configured one.
    assert_eq!(a.state.borrow().managers, vec![leader.addr.clone()]);
    a.stop().await;
}
