//! The process engine's task shim on its own, for the worker's integration
//! tests (`CARGO_BIN_EXE_shoal-task-shim`); the daemon re-execs `shoal`.

fn main() {
    match shoal_worker::exec::process::hidden_main() {
        Some(code) => std::process::exit(code),
        None => {
            eprintln!(
                "usage: shoal-task-shim __task-shim <task dir> | __task-exec <task dir> <cmd>..."
            );
            std::process::exit(2);
        }
    }
}
