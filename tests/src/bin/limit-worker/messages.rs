//! The messages of the `limit-worker` binary, shared with `tests/limit_option_processes.rs`
//! (which includes this file): in the library, their limits would be linked into
//! `test-worker` too and keep it from starting on beanstalkd.

use serde::{Deserialize, Serialize};

/// A call to a customer's API, which takes two at once.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(
    queue = "customer-calls",
    retries = 0,
    concurrency = 2,
    concurrency_key = "customer"
)]
pub struct CallCustomerApi {
    /// The key of the limit.
    pub customer: String,
    /// Recorded when handled.
    pub n: u64,
}

/// A lookup, without limits of its own: the worker's `--rate-limit lookups=R` holds it.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(queue = "lookups", retries = 0)]
pub struct Lookup {
    /// Recorded when handled.
    pub n: u64,
}
