//! Shared pieces of mq's end-to-end tests: the transport conformance suite, and the
//! messages and slots the test worker binary runs.

pub mod suite;
