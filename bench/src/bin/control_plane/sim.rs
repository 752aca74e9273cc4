//! The simulated workers: each joins as a node does and runs the node's
//! own agent and worker on the sim engine.

use super::*;

/// One simulated worker, running.
pub(crate) struct Sim {
    pub(crate) session: watch::Receiver<SessionState>,
    pub(crate) stop: CancellationToken,
}

/// A worker's join, as `swarm join` does it: a new key, a CSR and the
/// token, through TLS that trusts only the token's root.
pub(crate) async fn join(addr: &str, token: &JoinToken, raw: &str) -> anyhow::Result<ClientTls> {
    let bootstrap = shoal_proto::tls::bootstrap_client_config(token.root_digest())?;
    let key = NodeKey::generate()?;
    let csr = key.csr_pem()?;
    let mut ca = NodeCaClient::new(shoal_proto::net::channel(addr, Arc::new(bootstrap)));
    let call = ca.issue_node_certificate(IssueNodeCertificateRequest {
        csr: csr.into_bytes(),
        token: raw.to_string(),
        availability: 0,
        proof: Vec::new(),
    });
    let issued = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .context("join timed out")??
        .into_inner();
    let creds = NodeCredentials {
        key_pem: key.to_pem(),
        cert_pem: issued.certificate,
        roots_pem: issued.root_ca,
    };
    Ok(ClientTls::new(creds.client_config()?))
}

/// Starts worker `i`'s agent and worker on a sim engine of its own, wired
/// as the daemon's `start_agent` wires them (no data plane, no logs).
pub(crate) fn start_sim(i: usize, tls: ClientTls, managers: &[String]) -> Sim {
    let (worker_tx, worker_rx) = mpsc::channel(64);
    let (net_tx, _net_rx) = watch::channel(None);
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(SessionState::default());
    let config = AgentConfig {
        managers: managers.to_vec(),
        tls,
        description: description(i),
        worker: worker_tx,
        networks: Arc::new(net_tx),
    };
    let stop = CancellationToken::new();
    let engine: Arc<dyn shoal_worker::exec::Engine> = Arc::new(
        shoal_worker::exec::metered::Metered(Arc::new(shoal_worker::exec::sim::SimEngine::new())),
    );
    tokio::spawn(shoal_worker::worker::run(
        engine,
        None,
        worker_rx,
        report_tx,
        stop.clone(),
    ));
    tokio::spawn(shoal_worker::agent::run(
        config,
        state_tx,
        report_rx,
        stop.clone(),
    ));
    Sim {
        session: state_rx,
        stop,
    }
}

/// A node of 4 CPUs and 8 GiB named `sim-NNNN`.
pub(crate) fn description(i: usize) -> NodeDescription {
    NodeDescription {
        hostname: format!("sim-{i:04}"),
        platform: Some(Platform {
            architecture: shoal_proto::build_info::arch().into(),
            os: shoal_proto::build_info::os().into(),
        }),
        resources: Some(Resources {
            nano_cpus: 4_000_000_000,
            memory_bytes: 8 << 30,
            pids: 0,
        }),
        engine: Some(EngineDescription {
            kind: "sim".into(),
            version: String::new(),
            labels: Default::default(),
        }),
    }
}
