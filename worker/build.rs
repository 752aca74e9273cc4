//! Builds the worker's two static helper programs with the same rustc and
//! for the same target as the worker: `pause/pause.rs`, the process that
//! holds a Docker task's network sandbox (see `src/exec/docker/sandbox.rs`),
//! into `OUT_DIR/shoal-pause`; and `init/init.rs`, the `--init` of the
//! embedded engine's tasks (see `src/exec/oci/init.rs`), into
//! `OUT_DIR/shoal-init`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    build("pause/pause.rs", "shoal-pause");
    build("init/init.rs", "shoal-init");
}

/// Compiles `source`, a `no_std` program without a libc, into a static
/// executable `OUT_DIR/<name>`.
fn build(source: &str, name: &str) {
    println!("cargo::rerun-if-changed={source}");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join(name);
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--target",
            &target,
            "--crate-type",
            "bin",
        ])
        .args([
            "-C",
            "panic=abort",
            "-C",
            "opt-level=s",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static"])
        .arg("-o")
        .arg(&out)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("run rustc for {source}: {e}"));
    assert!(status.success(), "building {source} failed");
}
