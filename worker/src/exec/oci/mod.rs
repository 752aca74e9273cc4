//! The embedded engine's image tasks: an OCI runtime spec per task, run by
//! youki's `libcontainer` from the process engine's shim.
//!
//! - [`prepare`]: image, sandbox, overlay root and spec of one task.
//! - [`plan`]: the service's container spec laid over the image's config.
//! - [`spec`]: the runtime spec: the plan in Docker's confinement.
//! - [`rootfs`]: the task's overlay over the image's layers.
//! - [`mounts`]: the service's mounts and the image's `VOLUME`s: volumes,
//!   binds and tmpfs as runtime-spec mounts.
//! - [`container`]: create, start and enter with libcontainer (shim side).
//! - `seccomp`: Docker's default seccomp profile, filtered for a task's
//!   capabilities, the machine's architecture and its kernel.
//! - `defaults`: Docker's other default confinement: capabilities and
//!   `--cap-add`/`--cap-drop`, masked and read-only paths, default mounts,
//!   the device cgroup allow-list, and the pids limit.

pub mod container;
pub mod defaults;
pub mod init;
pub mod mounts;
pub mod plan;
pub mod prepare;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
