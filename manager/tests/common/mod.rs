//! Real managers in this process, on loopback, over the real cluster port
//! (mutual TLS, every service): what an attacker holding a certificate of
//! the cluster can reach. Certificates come from the cluster's CA the way
//! nodes get them (a join token), or straight from its root.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_manager::ca::{DEFAULT_NODE_CERT_EXPIRY, JoinTokens, RootCa};
use shoal_manager::controlapi::ManagerSlot;
use shoal_manager::raft::node::RaftConfig;
use shoal_manager::runtime::{Bootstrap, Manager, ManagerConfig, bootstrap};
use shoal_proto::ca::IssueNodeCertificateRequest;
use shoal_proto::ca::node_ca_client::NodeCaClient;
use shoal_proto::control::control_client::ControlClient;
use shoal_proto::control::{GetNodeRequest, UpdateNodeRequest};
use shoal_proto::credentials::NodeCredentials;
use shoal_proto::identity::{NodeIdentity, NodeKey, NodeRole, new_id, new_node_id};
use shoal_proto::net::ClientTls;
use shoal_proto::objects::{self, Node, NodeSpec, NodeStatus, node_status};
use shoal_proto::raft::JoinRequest;
use shoal_proto::raft::raft_membership_client::RaftMembershipClient;
use tonic::transport::Channel;

/// A running manager and what it needs to keep running.
pub struct Member {
    pub manager: Manager,
    pub creds: NodeCredentials,
    pub node_id: String,
    pub raft_id: u64,
    pub addr: String,
    _dir: tempfile::TempDir,
}

/// A cluster of in-process managers; the founder leads.
pub struct Port {
    pub root: RootCa,
    pub cluster_id: String,
    pub tokens: JoinTokens,
    pub founder: Member,
    pub members: Vec<Member>,
}

/// A free loopback address (bound and released: racy, fine for tests).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn raft_config(id: u64) -> RaftConfig {
    RaftConfig {
        tick: Duration::from_millis(50),
        ..RaftConfig::new(id)
    }
}

/// Polls `f` until it holds, for up to 15 s.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "not within 15s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Port {
    /// A new cluster with one manager.
    pub async fn start() -> Port {
        shoal_proto::tls::install_default_provider();
        let cluster_id = new_id();
        let root = RootCa::generate(&cluster_id).unwrap();
        let tokens = JoinTokens::generate(root.digest());
        let node_id = new_node_id();
        let creds = mint(&root, &cluster_id, &node_id, NodeRole::Manager);
        let cluster = bootstrap::cluster(
            &cluster_id,
            &bootstrap::ClusterSettings::default(),
            &root,
            &tokens,
            None,
        );
        let node = Node {
            id: node_id.clone(),
            spec: Some(NodeSpec {
                desired_role: objects::NodeRole::Manager as i32,
                ..Default::default()
            }),
            status: Some(NodeStatus {
                state: node_status::State::Ready as i32,
                ..Default::default()
            }),
            role: objects::NodeRole::Manager as i32,
            ..Default::default()
        };
        let ingress = shoal_manager::runtime::ingress_network();
        let founder = Member::start(
            creds,
            1,
            Bootstrap::New {
                cluster: Box::new(cluster),
                node: Box::new(node),
                ingress: Box::new(ingress),
                restored: Box::default(),
            },
        )
        .await;
        Port {
            root,
            cluster_id,
            tokens,
            founder,
            members: Vec::new(),
        }
    }

    /// Where the founder listens.
    pub fn addr(&self) -> &str {
        &self.founder.addr
    }

    /// Joins a node through the CA with a token, as `swarm join` does: the
    /// store records it (a manager token: as a manager). It runs nothing.
    pub async fn join(&self, role: NodeRole) -> NodeCredentials {
        let token = match role {
            NodeRole::Manager => &self.tokens.manager,
            NodeRole::Worker => &self.tokens.worker,
        };
        let tls = shoal_proto::tls::bootstrap_client_config(self.root.digest()).unwrap();
        let key = NodeKey::generate().unwrap();
        let issued = NodeCaClient::new(shoal_proto::net::channel(self.addr(), Arc::new(tls)))
            .issue_node_certificate(IssueNodeCertificateRequest {
                csr: key.csr_pem().unwrap().into_bytes(),
                token: token.to_string(),
                ..Default::default()
            })
            .await
            .expect("join through the CA")
            .into_inner();
        NodeCredentials {
            key_pem: key.to_pem(),
            cert_pem: issued.certificate,
            roots_pem: issued.root_ca,
        }
    }

    /// A certificate straight from the root, for a node the store may not
    /// know: what a leaked root-signed credential looks like.
    pub fn mint(&self, node_id: &str, role: NodeRole) -> NodeCredentials {
        mint(&self.root, &self.cluster_id, node_id, role)
    }

    /// Joins a second (third, ...) manager that runs: CA, then Raft
    /// membership through `via`, then its own manager.
    pub async fn add_manager(&mut self, via: &str) -> usize {
        let creds = self.join(NodeRole::Manager).await;
        let addr = free_addr();
        let joined = RaftMembershipClient::new(channel(via, &creds))
            .join(JoinRequest {
                addr: addr.to_string(),
            })
            .await
            .expect("join raft")
            .into_inner();
        let member = Member::start_at(
            creds,
            joined.raft_id,
            addr,
            Bootstrap::Join {
                peers: joined.members,
            },
        )
        .await;
        let ctx = member.manager.context().clone();
        eventually("the new manager catches up", || {
            ctx.store.view(|t| t.cluster().is_some()) && ctx.raft.status().leader != 0
        })
        .await;
        self.members.push(member);
        self.members.len() - 1
    }

    /// `node demote` of `node_id`, by the founder.
    pub async fn demote(&self, node_id: &str) {
        let mut control = ControlClient::new(channel(self.addr(), &self.founder.creds));
        let node = control
            .get_node(GetNodeRequest {
                node_id: node_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .node
            .unwrap();
        let mut spec = node.spec.unwrap_or_default();
        spec.desired_role = objects::NodeRole::Worker as i32;
        retrying(|| {
            let mut control = control.clone();
            let request = UpdateNodeRequest {
                node_id: node_id.into(),
                version: 0,
                spec: Some(spec.clone()),
            };
            async move { control.update_node(request).await }
        })
        .await
        .expect("demote");
    }
}

impl Member {
    async fn start(creds: NodeCredentials, raft_id: u64, bootstrap: Bootstrap) -> Member {
        Member::start_at(creds, raft_id, free_addr(), bootstrap).await
    }

    async fn start_at(
        creds: NodeCredentials,
        raft_id: u64,
        addr: SocketAddr,
        bootstrap: Bootstrap,
    ) -> Member {
        let dir = tempfile::tempdir().unwrap();
        let node_id = creds.identity().unwrap().node_id;
        let config = ManagerConfig {
            dir: dir.path().join("manager"),
            node_id: node_id.clone(),
            raft_id,
            listen: addr,
            advertise: addr.to_string(),
            credentials: creds.clone(),
            client_tls: ClientTls::new(creds.client_config().unwrap()),
            raft: raft_config(raft_id),
            unlock_key: None,
        };
        let manager = Manager::start(config, bootstrap, ManagerSlot::default())
            .await
            .expect("manager starts");
        Member {
            manager,
            creds,
            node_id,
            raft_id,
            addr: addr.to_string(),
            _dir: dir,
        }
    }
}

fn mint(root: &RootCa, cluster_id: &str, node_id: &str, role: NodeRole) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let identity = NodeIdentity {
        node_id: node_id.into(),
        role,
        cluster_id: cluster_id.into(),
    };
    let cert = root
        .issue(
            &key.csr_pem().unwrap(),
            &identity,
            &["127.0.0.1".parse().unwrap()],
            DEFAULT_NODE_CERT_EXPIRY,
        )
        .unwrap();
    NodeCredentials {
        key_pem: key.to_pem(),
        cert_pem: cert,
        roots_pem: root.cert_pem().to_string(),
    }
}

/// A mutual-TLS channel to `addr` presenting `creds`.
pub fn channel(addr: &str, creds: &NodeCredentials) -> Channel {
    shoal_proto::net::channel(addr, creds.client_config().unwrap())
}

/// The node id `creds` name.
pub fn id_of(creds: &NodeCredentials) -> String {
    creds.identity().unwrap().node_id
}

/// Waits up to 10 s for the next item of a response stream.
pub async fn next<T>(stream: &mut tonic::Streaming<T>) -> Option<Result<T, tonic::Status>> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream answers within 10 s")
        .transpose()
}

/// Calls `f` again while it fails with `Aborted`: a node write raced a
/// leader loop's (the allocator gives a new node its ingress address).
pub async fn retrying<T, F, Fut>(mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Err(s) if s.code() == tonic::Code::Aborted && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}
