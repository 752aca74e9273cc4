//! The Raft WAL: segments of sealed records and raw bytes, replayed and rebuilt into the log the storage serves.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("wal_replay", scratch(), data);
});
