//! Generates the protocol code at build time. `protox` parses the `.proto`
//! files in pure Rust, so no system `protoc` is needed on any machine.

use std::process::Command;

const PROTOS: &[&str] = &[
    "shoal/objects.proto",
    "shoal/control.proto",
    "shoal/dispatcher.proto",
    "shoal/raft.proto",
    "shoal/ca.proto",
    "shoal/logs.proto",
    "shoal/local.proto",
    "shoal/store.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Ordered maps: encoding is deterministic, so equal stores encode
        // (and digest) equally on every manager.
        .btree_map(".")
        // A store action holds one object inline, so it is as large as
        // the largest kind (a service, 2 KB): every config written moved
        // 2 KB around as it was batched, logged and applied. The large
        // kinds live behind a box; configs and secrets (150 bytes) stay.
        .boxed(".shoal.store.StoreAction.target.node")
        .boxed(".shoal.store.StoreAction.target.service")
        .boxed(".shoal.store.StoreAction.target.task")
        .boxed(".shoal.store.StoreAction.target.network")
        .boxed(".shoal.store.StoreAction.target.cluster")
        // Registry passwords never reach a log through `{:?}` (see
        // `registry_auth.rs`).
        .skip_debug([".shoal.objects.RegistryAuth"])
        .compile_fds(fds)?;

    // Build facts shown by `shoal version`.
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SHOAL_GIT_COMMIT={commit}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=SHOAL_RUSTC_VERSION={rustc_version}");
    Ok(())
}
