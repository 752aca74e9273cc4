//! Authority follows the store, on real daemons, from an attacker's seat:
//! a demoted manager's credentials (its certificate still says manager for
//! 90 days) open neither the control API nor Raft, from the moment the
//! demotion commits; a removed node's open streams end with its removal.

use std::time::Duration;

use protobuf::Message as _;
use shoal_proto::control::GetNodeRequest;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::dispatcher::dispatcher_client::DispatcherClient;
use shoal_proto::dispatcher::{AssignmentsRequest, SessionRequest};
use shoal_proto::raft::RaftMessage;
use shoal_proto::raft::raft_client::RaftClient;
use shoal_tests::Cluster;
use tonic::Code;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn credentials(cluster: &Cluster, i: usize) -> anyhow::Result<NodeCredentials> {
    NodeCredentials::load(&NodeCredentials::dir(cluster.state_dir(i)))?
        .ok_or_else(|| anyhow::anyhow!("host {i} has no credentials"))
}

#[test]
fn a_demoted_manager_s_credentials_open_neither_the_control_api_nor_raft() -> anyhow::Result<()> {
    shoal_proto::tls::install_default_provider();
    let cluster = Cluster::start(2)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "manager")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    let leader = cluster.leader(0)?;
    let demoted = 1 - leader;
    // Taken before the demotion: the node renews into a worker
    // certificate soon after, but this one stays valid for 90 days.
    let creds = credentials(&cluster, demoted)?;
    let node_id = creds.identity()?.node_id;
    let manager = cluster.manager_addr(leader);

    let call = |creds: NodeCredentials, manager: String, node_id: String| {
        cluster.in_netns(demoted, move || {
            block_on(async move {
                let channel = shoal_proto::net::channel(&manager, creds.client_config().unwrap());
                let control = ControlClient::new(channel.clone())
                    .get_node(GetNodeRequest { node_id })
                    .await
                    .map(|_| ());
                let mut beat = raft::prelude::Message::default();
                beat.set_msg_type(raft::prelude::MessageType::MsgHeartbeatResponse);
                beat.from = 1;
                beat.to = 1;
                beat.term = 1;
                let raft = RaftClient::new(channel)
                    .pipe_raft_messages(tokio_stream::iter([RaftMessage {
                        messages: vec![beat.write_to_bytes().unwrap()],
                    }]))
                    .await
                    .map(|_| ());
                (control, raft)
            })
        })
    };
    let (control, _) = call(creds.clone(), manager.clone(), node_id.clone())?;
    control.expect("a manager's credentials read the control API");

    let host = cluster.hostname(demoted).to_string();
    cluster.shoal(leader, &["node", "demote", &host]).ok()?;
    // At once: no waiting for the node to renew or leave.
    let (control, raft) = call(creds, manager, node_id)?;
    let control = control.expect_err("a demoted manager read the control API");
    assert_eq!(control.code(), Code::PermissionDenied, "{control:?}");
    assert!(control.message().contains("demoted"), "{control:?}");
    let raft = raft.expect_err("a demoted manager spoke raft");
    assert_eq!(raft.code(), Code::PermissionDenied, "{raft:?}");
    Ok(())
}

#[test]
fn removing_a_node_ends_its_open_streams() -> anyhow::Result<()> {
    shoal_proto::tls::install_default_provider();
    let cluster = Cluster::start(2)?;
    cluster.init_swarm(0)?;
    cluster.join(1, 0, "worker")?;
    cluster.wait_nodes_ready(0, 2, Duration::from_secs(30))?;
    let creds = credentials(&cluster, 1)?;
    let node_id = creds.identity()?.node_id;
    let manager = cluster.manager_addr(0);

    // The worker's session and assignment streams, opened from its host,
    // held open while host 0 removes it.
    let netns = format!("/var/run/netns/{}", cluster.netns(1));
    let (opened, wait_opened) = std::sync::mpsc::channel();
    let streams = std::thread::spawn(move || -> anyhow::Result<(String, String)> {
        let ns = std::fs::File::open(&netns)?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        block_on(async move {
            let channel = shoal_proto::net::channel(&manager, creds.client_config()?);
            let mut dispatcher = DispatcherClient::new(channel);
            let mut session = dispatcher
                .session(SessionRequest::default())
                .await?
                .into_inner();
            let first = session
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("no session message"))?;
            let mut assignments = dispatcher
                .assignments(AssignmentsRequest {
                    session_id: first.session_id,
                })
                .await?
                .into_inner();
            assignments.message().await?;
            opened.send(())?;
            let session_end = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    match session.message().await {
                        Ok(Some(_)) => continue,
                        other => return format!("{other:?}"),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| "still open after 20 s".into());
            let assignments_end = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match assignments.message().await {
                        Ok(Some(_)) => continue,
                        other => return format!("{other:?}"),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| "still open".into());
            Ok((session_end, assignments_end))
        })
    });
    wait_opened.recv_timeout(Duration::from_secs(30))?;
    cluster
        .shoal(0, &["node", "rm", "--force", &node_id])
        .ok()?;
    let (session, assignments) = streams
        .join()
        .map_err(|_| anyhow::anyhow!("stream thread panicked"))??;
    assert!(session.starts_with("Err("), "session: {session}");
    assert!(
        assignments.starts_with("Err("),
        "assignments: {assignments}"
    );
    Ok(())
}
