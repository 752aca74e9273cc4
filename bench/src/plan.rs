//! What one benchmark run does, shared by both systems so they are driven
//! with exactly the same shape: the concurrency steps, the two modes, the
//! payload and the timing.

use std::fmt;

use crate::load::{Phase, Stats};

/// One request creates one object, or a batch of `Plan::batch` objects in
/// one atomic write (Shoal: a `Batch` RPC; etcd: a txn of puts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Mode {
    /// One object per request.
    Single,
    /// `Plan::batch` objects per request.
    Batched,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Single => "single",
            Mode::Batched => "batched",
        })
    }
}

/// The run's shape.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Concurrent closed-loop clients, one step each.
    pub concurrency: Vec<usize>,
    /// The modes run, each at every concurrency.
    pub modes: Vec<Mode>,
    /// Warm-up and measured time per step.
    pub phase: Phase,
    /// Objects per request in batched mode.
    pub batch: usize,
    /// Client connections (HTTP/2) the clients share, round robin.
    pub conns: usize,
    /// Bytes of each object's value.
    pub payload: usize,
    /// etcd's members and client speak mutual TLS, as Shoal's always do.
    pub etcd_tls: bool,
}

impl Plan {
    /// Every (mode, concurrency) step, in the order they run.
    pub fn steps(&self) -> Vec<(Mode, usize)> {
        self.modes
            .iter()
            .flat_map(|&m| self.concurrency.iter().map(move |&c| (m, c)))
            .collect()
    }

    /// A unique, valid object name (Docker's name rule; etcd takes it as a
    /// key suffix): mode, step, client, request, item.
    pub fn name(mode: Mode, clients: usize, client: usize, seq: u64, item: usize) -> String {
        let m = if mode == Mode::Single { 's' } else { 'b' };
        format!("{m}{clients}-{client}-{seq}-{item}")
    }

    /// The value stored in every object.
    pub fn value(&self) -> Vec<u8> {
        vec![b'x'; self.payload]
    }

    /// Objects per request in `mode`.
    pub fn per_request(&self, mode: Mode) -> usize {
        match mode {
            Mode::Single => 1,
            Mode::Batched => self.batch,
        }
    }
}

/// One measured step of one system.
#[derive(Debug, Clone)]
pub struct Row {
    /// "Shoal" or "etcd".
    pub system: &'static str,
    /// Single or batched.
    pub mode: Mode,
    /// Concurrent clients.
    pub clients: usize,
    /// What was measured.
    pub stats: Stats,
}
