pub mod challenge;
pub mod credentials;
pub mod digest;
pub mod poller;
pub mod reference;
