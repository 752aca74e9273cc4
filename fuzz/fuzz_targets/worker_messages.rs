//! What a manager accepts from a worker: sessions (node descriptions), task status reports, certificate requests.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("worker_messages", scratch(), data);
});
