//! Everything that talks to the Docker engine.

pub mod engine;
pub mod hosts;
pub mod model;
pub mod swarm;
pub mod watcher;

pub use engine::DockerError;
