//! Compose files for `shoal stack deploy`: up to three (split at NUL),
//! loaded, merged, interpolated, checked and converted to specs.
//! See `shoal_cli::fuzzing` for the input format and what must hold.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir_in(shoal_fuzz::scratch_root()).expect("scratch dir"))
        .path()
}

fuzz_target!(|data: &[u8]| {
    shoal_cli::fuzzing::compose_loader(&scratch().join("stack"), data);
});
