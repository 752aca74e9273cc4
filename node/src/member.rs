//! The worker side of a node in a swarm: the agent's session with the
//! leader, the worker and its engine, the log publisher, the data plane,
//! and the keeper of the manager list. Every node in a swarm runs one,
//! managers too. They hang off one token, a branch of the node's, and are
//! tracked, so stopping a membership returns once they have all ended.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use shoal_proto::net::ClientTls;
use shoal_proto::shutdown::{CancellationToken, TaskTracker};
use shoal_worker::agent::{self, AgentConfig, SessionState};
use shoal_worker::engine_choice::EngineInfo;
use shoal_worker::exec::{Engine, EngineParams};
use shoal_worker::logs::LogsConfig;
use shoal_worker::net::agent::NetAgent;
use shoal_worker::net::plane::DataPlane;
use shoal_worker::task::Report;
use shoal_worker::worker::Command as WorkerCommand;
use tokio::sync::{mpsc, watch};

use crate::machine::Machine;
use crate::swarm_file::SwarmFile;

/// How long `swarm leave` waits for the node's tasks to be removed.
const REMOVE_ALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping waits for the loops to end before it gives up on
/// them (a stuck engine call must not hold a daemon's exit forever).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running membership.
pub(crate) struct Membership {
    stop: CancellationToken,
    tasks: TaskTracker,
    worker: mpsc::Sender<WorkerCommand>,
    plane: Arc<NetAgent>,
    session: watch::Receiver<SessionState>,
}

impl Membership {
    /// Starts the node's worker side for the swarm `file` describes,
    /// talking mutual TLS with `tls`; stops with `parent`.
    pub fn start(
        machine: &Machine,
        file: &SwarmFile,
        tls: &ClientTls,
        parent: &CancellationToken,
    ) -> Membership {
        let stop = parent.child_token();
        let tasks = TaskTracker::new();
        let mut managers = file.managers.clone();
        if file.is_manager() {
            managers.insert(0, file.advertise_addr.clone());
        }
        let (worker_tx, worker_rx) = mpsc::channel(64);
        let (net_tx, net_rx) = watch::channel(None);
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let (state_tx, session) = watch::channel(SessionState::default());
        let config = AgentConfig {
            managers,
            tls: tls.clone(),
            description: machine.description(),
            worker: worker_tx.clone(),
            networks: Arc::new(net_tx),
        };
        let plane = NetAgent::start(&file.node_id, net_rx, stop.clone());
        let (node_id, logs_tls, logs_session) =
            (file.node_id.clone(), tls.clone(), session.clone());
        // Logs are read from the same engine that runs the tasks.
        let logs = move |engine| LogsConfig {
            node_id,
            tls: logs_tls,
            engine,
            session: logs_session,
        };
        let params = EngineParams {
            state_dir: machine.state_dir.clone(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            node_id: file.node_id.clone(),
            docker_socket: machine.docker_socket.clone(),
            images: machine.images.clone(),
            volumes: machine.volumes.clone(),
        };
        tasks.spawn(run_worker(
            Worker {
                info: machine.engine.clone(),
                params,
                plane: plane.clone(),
                commands: worker_rx,
                reports: report_tx,
                tasks: tasks.clone(),
                stop: stop.clone(),
            },
            logs,
        ));
        tasks.spawn(agent::run(config, state_tx, report_rx, stop.clone()));
        tasks.spawn(remember_managers(
            machine.state_dir.clone(),
            session.clone(),
            stop.clone(),
        ));
        Membership {
            stop,
            tasks,
            worker: worker_tx,
            plane,
            session,
        }
    }

    /// Runs `loop_` with the membership: it must end once [`Self::token`]
    /// is cancelled.
    pub fn spawn(&self, loop_: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(loop_);
    }

    /// The token the membership's loops stop with.
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// The agent's session with the leader.
    pub fn session(&self) -> watch::Receiver<SessionState> {
        self.session.clone()
    }

    /// `swarm leave`: stops and removes every task of the node (as Docker
    /// does) and the data plane's kernel state.
    pub async fn remove_all(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self
            .worker
            .send(WorkerCommand::RemoveAll(done))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(REMOVE_ALL_TIMEOUT, wait).await;
        }
        self.plane.remove_all().await;
    }

    /// Stops every loop and waits for them. Tasks keep running, for the
    /// next daemon to adopt, unless [`Self::remove_all`] removed them.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_TIMEOUT, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tasks.len(),
                "the node's loops did not stop in time; leaving them"
            );
        }
        // The data plane's loop is spawned by NetAgent itself and holds it:
        // it has ended once the last reference is gone.
        let plane = Arc::downgrade(&self.plane);
        drop(self.plane);
        released(plane, STOP_TIMEOUT).await;
    }
}

/// Waits until nothing holds the data plane any more, up to `within`.
async fn released(plane: Weak<NetAgent>, within: Duration) {
    let gone = async {
        while plane.strong_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(within, gone).await.is_err() {
        tracing::warn!("the data plane's loop did not stop in time; leaving it");
    }
}

/// What the worker needs to start.
struct Worker {
    info: EngineInfo,
    params: EngineParams,
    plane: Arc<NetAgent>,
    commands: mpsc::Receiver<WorkerCommand>,
    reports: mpsc::UnboundedSender<Report>,
    /// The membership's tracker, which the log publisher joins.
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// Builds the engine, then runs the log publisher and the worker on it
/// until `stop`. A node whose engine cannot start stays in the swarm and
/// runs no tasks.
async fn run_worker(w: Worker, logs: impl FnOnce(Arc<dyn Engine>) -> LogsConfig) {
    let engine = match shoal_worker::exec::build(&w.info, &w.params).await {
        Ok(engine) => engine,
        Err(e) => {
            tracing::error!(error = %e, engine = %w.info.display(), "the engine could not start: this node runs no tasks");
            return;
        }
    };
    w.tasks.spawn(shoal_worker::logs::run(
        logs(engine.clone()),
        w.stop.clone(),
    ));
    let plane: Arc<dyn DataPlane> = w.plane;
    shoal_worker::worker::run(engine, Some(plane), w.commands, w.reports, w.stop).await;
}

/// Keeps the managers the dispatcher tells of in swarm.json, so a restart
/// can reach the cluster even if the first manager is gone.
async fn remember_managers(
    state_dir: PathBuf,
    mut session: watch::Receiver<SessionState>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = session.changed() => if changed.is_err() { return },
        }
        let managers = session.borrow().managers.clone();
        if managers.is_empty() {
            continue;
        }
        if let Ok(Some(mut file)) = SwarmFile::load(&state_dir)
            && file.managers != managers
        {
            file.managers = managers;
            let _ = file.save(&state_dir);
        }
    }
}
