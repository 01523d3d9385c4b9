use serde::{Deserialize, Serialize};

#[derive(mq::Message, Serialize, Deserialize)]
#[message(queu = "emails", priority = 10, tr = "2m", retry = 5)]
struct Ping;

fn main() {}
