//! Builds `pause/pause.rs`, the static process that holds a Docker task's
//! network sandbox (see `src/exec/docker/sandbox.rs`), with the same rustc
//! and for the same target as the worker, into `OUT_DIR/shoal-pause`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "pause/pause.rs";
    println!("cargo::rerun-if-changed={source}");
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("shoal-pause");
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
        .expect("run rustc for the pause program");
    assert!(status.success(), "building {source} failed");
}
