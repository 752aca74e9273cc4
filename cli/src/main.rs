//! `shoal`: the command line and the daemon in one binary. All of it is
//! the `shoal_cli` library (`src/lib.rs`); this is its entry point and the
//! process's allocator.

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    shoal_cli::main()
}
