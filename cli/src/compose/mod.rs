//! Compose files (v3.x and the versionless Compose Specification) for
//! `shoal stack deploy`: [`load`] reads and merges files and interpolates
//! variables over a position-keeping YAML tree ([`yaml`]); [`model`] checks
//! every key into a typed project; [`convert`] names and labels it as
//! Docker's stacks do. Every error is one line: `FILE:LINE: KEY: message`.

pub mod convert;
pub mod errors;
#[doc(hidden)]
pub mod fuzzing;
mod interp;
pub mod load;
pub mod model;
mod read;
mod syntax;
mod yaml;

#[cfg(test)]
mod tests;

pub use convert::{Desired, NAMESPACE_LABEL, desired};
pub use load::load;
