//! A node started in-process: `swarm init` of a single manager on a fresh
//! state dir with the sim engine reaches a ready manager and worker and
//! runs a task; the node stops through its token with every task it
//! spawned ended, and takes its swarm up again on the next start.
//!
//! The data plane programs the kernel (namespaces, VXLAN, nftables), so
//! the test runs itself again in a child process with network and mount
//! namespaces of its own: nothing reaches the host or outlives the test.
//! It needs root.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_manager::context::ManagerContext;
use shoal_node::{Node, NodeConfig};
use shoal_proto::local::SwarmInitRequest;
use shoal_proto::objects::{
    Annotations, ContainerSpec, ReplicatedService, Service, ServiceSpec, TaskSpec, TaskState,
    node_status, service_spec,
};
use shoal_proto::shutdown::CancellationToken;
use shoal_proto::task_state::observed;
use shoal_worker::engine_choice::{EngineChoice, EngineKind};

/// Set in the child that runs the scenario inside its namespaces.
const INNER: &str = "SHOAL_NODE_TEST_INNER";
const READY_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_node_inits_runs_a_task_stops_cleanly_and_resumes() {
    if std::env::var_os(INNER).is_none() {
        let name = "a_node_inits_runs_a_task_stops_cleanly_and_resumes";
        return run_isolated(name);
    }
    private_mounts();
    run(&["ip", "link", "set", "lo", "up"]);
    shoal_proto::telemetry::init("info", shoal_proto::telemetry::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(scenario());
}

/// Runs this test binary's `name` again, in new network and mount
/// namespaces (entered before the child's first thread exists).
fn run_isolated(name: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe);
    child
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, "1");
    // SAFETY: unshare(2) only, between fork and exec.
    unsafe {
        child.pre_exec(|| {
            use nix::sched::{CloneFlags, unshare};
            unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)
                .map_err(std::io::Error::from)
        });
    }
    let status = child.status().expect("the test runs in its own namespaces");
    assert!(status.success(), "the isolated run failed: {status}");
}

/// Keeps the child's mounts to itself, and pinned network namespaces in a
/// /run/netns of its own.
fn private_mounts() {
    use nix::mount::{MsFlags, mount};
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).expect("private mounts");
    std::fs::create_dir_all("/run/netns").expect("/run/netns");
    mount(
        Some("tmpfs"),
        "/run/netns",
        Some("tmpfs"),
        MsFlags::empty(),
        none,
    )
    .expect("a private /run/netns");
}

fn run(argv: &[&str]) {
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .expect(argv[0]);
    assert!(status.success(), "{argv:?}: {status}");
}

fn config(state_dir: &Path) -> NodeConfig {
    NodeConfig {
        state_dir: state_dir.to_path_buf(),
        engine: EngineChoice::Exactly(EngineKind::Sim),
        docker_socket: "/nonexistent/docker.sock".into(),
        insecure_registries: Vec::new(),
    }
}

/// Tasks alive on this runtime.
fn alive() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let state_dir = dir.path().join("state");
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").to_string()
    };
    let before = alive();

    let root = CancellationToken::new();
    let node = Node::start(config(&state_dir), &root)
        .await
        .expect("the node starts");
    assert_eq!(node.swarm().info(true).local_node_state, "inactive");
    let init = node
        .swarm()
        .init(SwarmInitRequest {
            listen_addr: addr.clone(),
            advertise_addr: addr.clone(),
            ..Default::default()
        })
        .await
        .expect("swarm init");
    assert!(init.worker_token.starts_with("SWMTKN-1-"), "{init:?}");
    ready(&node, &init.node_id).await;
    for file in [
        "swarm.json",
        "certificates/current/node.crt",
        "manager/raft",
    ] {
        assert!(state_dir.join(file).exists(), "{file} is written");
    }

    // The worker runs what the manager schedules.
    let ctx = node.slot().get().expect("a manager");
    create_service(&ctx).await;
    eventually("a task runs", READY_WITHIN, || {
        ctx.store.view(|t| {
            t.all::<shoal_proto::objects::Task>()
                .any(|task| observed(task) == TaskState::Running)
        })
    })
    .await;
    drop(ctx);

    stop(node, root, before).await;

    // The next start takes the swarm up again from the state dir.
    let root = CancellationToken::new();
    let node = Node::start(config(&state_dir), &root)
        .await
        .expect("the node starts again");
    ready(&node, &init.node_id).await;
    stop(node, root, before).await;
}

/// Waits for a leading manager and a worker with a session, ready in the
/// store.
async fn ready(node: &Node, node_id: &str) {
    let swarm = node.swarm();
    eventually("the agent has a session", READY_WITHIN, || {
        swarm.session_manager().is_some()
    })
    .await;
    let ctx = node.slot().get().expect("a manager");
    assert!(ctx.raft.status().is_leader(), "the only manager leads");
    let me = ctx
        .store
        .view(|t| t.get::<shoal_proto::objects::Node>(node_id).cloned());
    let state = me.and_then(|n| n.status).map(|s| s.state);
    assert_eq!(state, Some(node_status::State::Ready as i32));
    let info = swarm.info(false);
    assert_eq!(info.local_node_state, "active");
    assert!(info.control_available, "{info:?}");
    assert_eq!((info.managers, info.nodes), (1, 1), "{info:?}");
    assert_eq!(info.node_id, node_id);
    assert!(info.store_digest.starts_with("sha256:"), "{info:?}");
}

/// Stops `node` through its token and checks that every task it spawned
/// has ended (the worker's own, which it cancels but does not track, a
/// moment later) and the manager is gone.
async fn stop(node: Node, root: CancellationToken, before: usize) {
    let slot = node.slot().clone();
    assert!(alive() > before, "the node runs tasks of its own");
    root.cancel();
    tokio::time::timeout(Duration::from_secs(30), node.stop())
        .await
        .expect("the node stops in time");
    assert!(slot.get().is_none(), "the manager left its slot");
    eventually(
        "every task the node spawned ended",
        Duration::from_secs(5),
        || alive() == before,
    )
    .await;
}

async fn create_service(ctx: &ManagerContext) {
    let service = Service {
        id: shoal_proto::identity::new_id(),
        spec: Some(ServiceSpec {
            annotations: Some(Annotations {
                name: "web".into(),
                ..Default::default()
            }),
            task: Some(TaskSpec {
                container: Some(ContainerSpec {
                    image: "web:1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(service_spec::Mode::Replicated(ReplicatedService {
                replicas: 1,
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    ctx.update(|tx| {
        tx.create(service)?;
        Ok::<_, shoal_manager::context::CommitError>(())
    })
    .await
    .expect("the service is created");
}
