//! Scheduler tests: filters and the pipeline over hand-built tables (a
//! `Store` without Raft), the plan writer against a store, and the loop
//! against an in-process single-node Raft.

mod filters;
pub(crate) mod kit;
mod pipeline;
mod run;
mod runs;
mod write;
