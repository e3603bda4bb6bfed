pub mod challenge;
pub mod check;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod insecure;
pub mod poller;
pub mod reference;
