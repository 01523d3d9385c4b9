use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queu = "emails")]
struct Ping;

fn main() {}
