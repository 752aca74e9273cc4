//! A Raft snapshot (from the leader, or a sealed snapshot file) restored into the store, then log entries applied.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("snapshot_decode", scratch(), data);
});
