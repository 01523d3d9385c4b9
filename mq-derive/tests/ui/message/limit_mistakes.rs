use serde::{Deserialize, Serialize};

// A limit of 0.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(concurrency = 0, concurrency_key = "customer")]
struct CallApi {
    customer: String,
}

// A key field that does not exist, and a rate of 0.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(concurrency = 2, concurrency_key = "client", rate_limit = 0)]
struct Charge {
    customer: String,
}

// A key without its limit, each kind.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(concurrency_key = "customer", rate_key = "customer")]
struct Refund {
    customer: String,
}

// Not a list of field names; a limit that is not a number.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(rate_limit = "50/s", rate_key = "customer + 1")]
struct Geocode {
    customer: String,
}

// Fields to name, but the type has none with names.
#[derive(mq::Message, Serialize, Deserialize)]
#[message(concurrency = 2, concurrency_key = "id")]
struct Tuple(u64);

fn main() {}
