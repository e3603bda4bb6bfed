//! Update jobs: pull a container's image with live progress, recreate the
//! container keeping every setting, verify it, roll back on failure.
//!
//! The decisions are pure and live here, tested on their own: how the
//! engine's pull stream becomes one progress figure ([`progress`]) and what
//! the replacement container is created with ([`plan`]).

pub mod own;
pub mod plan;
pub mod progress;
pub mod sequence;
pub mod supervisor;
