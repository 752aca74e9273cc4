//! What the worker's integration tests need from the machine (root for
//! namespaces, a Docker engine), and the one rule for when it is missing:
//! the test FAILS, unless `SHOAL_TEST_ALLOW_SKIP=1` says skipping is fine
//! here (a laptop without root or dockerd). CI never sets it, so a test
//! can never pass by not running.

#![allow(dead_code)]

/// The variable that allows skipping.
pub const ALLOW_SKIP: &str = "SHOAL_TEST_ALLOW_SKIP";

/// `false` (skip) only when allowed; panics with `why` otherwise.
pub fn missing(test: &str, why: &str) -> bool {
    if std::env::var(ALLOW_SKIP).is_ok_and(|v| v == "1") {
        eprintln!("\n!!!!!!!! SKIPPED {test}: {why} ({ALLOW_SKIP}=1) !!!!!!!!\n");
        return false;
    }
    panic!("{test} cannot run: {why}; set {ALLOW_SKIP}=1 to skip it instead");
}

/// Whether the test may go on as root; see [`missing`].
pub fn root(test: &str) -> bool {
    nix::unistd::geteuid().is_root() || missing(test, "needs root (namespaces, nftables, VXLAN)")
}
