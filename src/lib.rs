//! shipshape keeps a host's Docker containers on the newest image of their tag.
//! See docs/architecture.md for how the actors fit together.

pub mod auth;
pub mod backup_command;
pub mod check_cache;
pub mod check_command;
pub mod config;
pub mod docker;
pub mod health_command;
pub mod http;
pub mod inventory;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod registry;
pub mod startup;
pub mod store;
pub mod swarm;
