//! Certificates, keys and CSRs others present: node identities, verification against the root, renewal proofs, the CA issuing for a CSR, credentials on disk.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir_in(shoal_fuzz::scratch_root()).expect("scratch dir"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("certificate", scratch(), data);
});
