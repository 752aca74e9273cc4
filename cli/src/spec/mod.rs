//! Service specs from what users write: the values of `service
//! create|update` flags and the compose keys that mean the same, read as
//! Docker's CLI reads them, and the policies a spec gets by default. The
//! flags (`cmd::service`) and the compose loader (`compose`) both build on
//! this, so a value means the same, and fails the same way, in both.
//!
//! Each parser takes a string and returns a proto part or a one-line
//! message naming what was expected; they double as clap value parsers.

mod file_ref;
mod mounts;
mod policy;
mod ports;
mod runtime;
mod scalars;

#[cfg(test)]
mod tests;

pub use file_ref::{FileRef, file_ref};
pub use mounts::mount;
pub use policy::{default_restart, default_rollout};
pub use ports::{port, port_key, port_rm};
pub use runtime::{
    CAP_RESET, capability, check_sysctl, check_ulimit, effective_caps, host, sysctl, ulimit,
};
pub use scalars::{boolean, cpus, duration, key_of, key_value, memory, nanos, pids};
