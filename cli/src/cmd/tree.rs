//! The nouns' subcommands, as SURFACE.md lists them. Each takes its
//! arguments as [`Pending`] until the issue that builds it gives it real
//! flags; `--help` already shows the whole tree. Nouns that are built
//! (`node`, `service`, `stack`, `network`, `secret`, `config`) define
//! theirs in their module.

use clap::Args;

/// Arguments of a command this build does not have yet: accepted as they
/// are so the command can say so clearly.
#[derive(Debug, Args)]
pub struct Pending {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}
