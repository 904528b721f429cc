//! One file per command group.

pub mod agent;
pub mod daemon;
pub mod events;
pub mod logs;
pub mod metrics;
pub mod proxy;
pub mod run;
pub mod task;
