//! Raft messages from peers: decoded, admitted, guarded and stepped into a real raft-rs node whose Readys are handled.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("raft_peer_message", scratch(), data);
});
