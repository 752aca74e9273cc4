//! Authorization on the cluster port, proved with real gRPC clients that
//! hold real certificates: a worker's certificate opens only what workers
//! may use, no certificate opens nothing but joining, and a removed node's
//! certificate opens nothing at all.

use std::sync::Arc;
use std::time::Duration;

use shoal_proto::ca::NodeCertificateStatusRequest;
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::control::ListNodesRequest;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::raft::RaftMessage;
use shoal_proto::raft::raft_client::RaftClient;
use shoal_proto::token::JoinToken;
use shoal_tests::Cluster;
use tonic::Code;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// What a client got: the gRPC code and message, or a transport failure.
fn outcome<T>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
    match r {
        Ok(_) => (Code::Ok, String::new()),
        Err(s) => {
            use std::error::Error;
            let mut detail = s.message().to_string();
            let mut src = s.source();
            while let Some(e) = src {
                detail = format!("{detail}: {e}");
                src = e.source();
            }
            (s.code(), detail)
        }
    }
}

#[test]
fn a_worker_certificate_opens_only_what_workers_may_use() -> anyhow::Result<()> {
    shoal_proto::tls::install_default_provider();
    let cluster = Cluster::start(2)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    let manager = cluster.manager_addr(0);
    let creds = NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(1)))?
        .expect("worker credentials");
    let worker_id = creds.identity()?.node_id;
    let token: JoinToken = cluster.join_token(0, "worker")?.parse()?;

    let (control, raft, own_status) = {
        let (creds, manager, worker_id) = (creds.clone(), manager.clone(), worker_id.clone());
        cluster.in_netns(1, move || {
            block_on(async move {
                let channel = shoal_proto::net::channel(&manager, creds.client_config().unwrap());
                let control = outcome(
                    ControlClient::new(channel.clone())
                        .list_nodes(ListNodesRequest::default())
                        .await,
                );
                let raft = outcome(
                    RaftClient::new(channel.clone())
                        .pipe_raft_messages(tokio_stream::iter([RaftMessage {
                            messages: vec![vec![1, 2, 3]],
                        }]))
                        .await,
                );
                let own = outcome(
                    NodeCaClient::new(channel)
                        .node_certificate_status(NodeCertificateStatusRequest {
                            node_id: worker_id,
                        })
                        .await,
                );
                (control, raft, own)
            })
        })?
    };
    assert_eq!(control.0, Code::PermissionDenied, "{control:?}");
    assert!(control.1.contains("only managers"), "{control:?}");
    assert_eq!(raft.0, Code::PermissionDenied, "{raft:?}");
    assert_eq!(
        own_status.0,
        Code::Ok,
        "a worker may ask the CA about itself: {own_status:?}"
    );

    // No client certificate (a TLS client that trusts the cluster CA).
    let anonymous = {
        let manager = manager.clone();
        cluster.in_netns(1, move || {
            block_on(async move {
                let tls = Arc::new(
                    shoal_proto::tls::bootstrap_client_config(token.root_digest()).unwrap(),
                );
                let channel = shoal_proto::net::channel(&manager, tls);
                outcome(
                    ControlClient::new(channel)
                        .list_nodes(ListNodesRequest::default())
                        .await,
                )
            })
        })?
    };
    assert_eq!(anonymous.0, Code::Unauthenticated, "{anonymous:?}");

    // Plain TCP: no TLS, no service.
    let plain = {
        let manager = manager.clone();
        cluster.in_netns(1, move || {
            block_on(async move {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{manager}"))
                    .unwrap()
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(3))
                    .connect_lazy();
                outcome(
                    ControlClient::new(channel)
                        .list_nodes(ListNodesRequest::default())
                        .await,
                )
            })
        })?
    };
    assert_ne!(plain.0, Code::Ok, "plaintext was served: {plain:?}");

    // `node rm` of the worker: its certificate is refused from then on.
    let out = cluster.shoal(0, &["node", "rm", "--force", &worker_id]);
    assert!(out.success(), "{}", out.stderr);
    let after = {
        let (creds, manager) = (creds.clone(), manager.clone());
        cluster.in_netns(1, move || {
            block_on(async move {
                let channel = shoal_proto::net::channel(&manager, creds.client_config().unwrap());
                outcome(
                    NodeCaClient::new(channel)
                        .node_certificate_status(NodeCertificateStatusRequest {
                            node_id: worker_id,
                        })
                        .await,
                )
            })
        })?
    };
    // Refused in the handshake: the client sees the "certificate revoked"
    // alert or, with TLS 1.3's late client-auth failure, a closed connection.
    assert!(
        matches!(after.0, Code::Unavailable | Code::Cancelled | Code::Unknown),
        "a removed node's certificate still works: {after:?}"
    );
    Ok(())
}

#[test]
fn node_rm_refuses_managers_and_ready_workers_without_force() -> anyhow::Result<()> {
    let cluster = Cluster::start(3)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.join(2, 0, "manager")?;
    cluster.wait_nodes_ready(0, 3, Duration::from_secs(20))?;
    let out = cluster.shoal(0, &["node", "rm", "node-2"]);
    assert!(
        out.stderr
            .contains("must be demoted to worker before removal"),
        "{}",
        out.stderr
    );
    let out = cluster.shoal(0, &["node", "rm", "node-1"]);
    assert!(
        out.stderr.contains("is not down and can't be removed"),
        "{}",
        out.stderr
    );
    Ok(())
}
