//! The unit tests' rule for what the machine lacks (see
//! `worker/tests/common/mod.rs`, the integration tests' copy of the rule):
//! a test that needs root fails without it, unless `SHOAL_TEST_ALLOW_SKIP=1`
//! allows skipping. CI never sets it.

/// Whether the test may go on as root; `false` (skip) only when allowed.
pub fn root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("SHOAL_TEST_ALLOW_SKIP").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: needs root (SHOAL_TEST_ALLOW_SKIP=1)");
        return false;
    }
    panic!("{test} needs root; set SHOAL_TEST_ALLOW_SKIP=1 to skip it instead");
}
