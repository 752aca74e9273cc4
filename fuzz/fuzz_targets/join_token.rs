//! A join token a joining node presents: parsed (`shoal_proto::token`) and judged by the CA's tokens.
//! See `shoal_manager::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_manager::fuzzing::run("join_token", scratch(), data);
});
