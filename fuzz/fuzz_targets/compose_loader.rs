//! Compose files for `shoal stack deploy`: up to three (split at NUL),
//! loaded, merged, interpolated, checked and converted to specs.
//! See `shoal_cli::fuzzing` for the input format and what must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    shoal_cli::fuzzing::compose_loader(&scratch().join("stack"), data);
});
