//! One file per command group.

pub mod agent;
pub mod daemon;
pub mod events;
pub mod metrics;
pub mod task;
