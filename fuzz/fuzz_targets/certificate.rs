//! Certificates, keys and CSRs others present: node identities, verification against the root, renewal proofs, the CA issuing for a CSR, credentials on disk.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("certificate", scratch(), data);
});
