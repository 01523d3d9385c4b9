//! Shared pieces of mq's end-to-end tests: the transport conformance suite, the beanstalkd
//! server harness, and the messages and slots the test worker binary runs.

pub mod beanstalkd;
pub mod nats;
mod server;
pub mod suite;
pub mod worker_process;
