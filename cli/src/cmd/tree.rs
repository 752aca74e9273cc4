//! The nouns' subcommands, as SURFACE.md lists them. Each takes its
//! arguments as [`Pending`] until the issue that builds it gives it real
//! flags; `--help` already shows the whole tree. Nouns that are built
//! (`node`, `service`, `network`, `secret`, `config`) define theirs in their
//! module.

use clap::{Args, Subcommand};

/// Arguments of a command this build does not have yet: accepted as they
/// are so the command can say so clearly.
#[derive(Debug, Args)]
pub struct Pending {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

macro_rules! subcommands {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Subcommand)]
        pub enum $name {
            $($(#[$vmeta])* $variant(Pending),)*
        }
    };
}

subcommands! {
    /// `shoal stack ...`
    StackCommand {
        /// Deploy a new stack or update an existing one (compose v3).
        #[command(alias = "up")]
        Deploy,
        /// List stacks.
        #[command(alias = "list")]
        Ls,
        /// List the services in a stack.
        Services,
        /// List the tasks in a stack.
        Ps,
        /// Remove one or more stacks.
        #[command(alias = "remove", alias = "down")]
        Rm,
        /// Show what a deploy would create, update and remove, changing nothing.
        Diff,
    }
}
