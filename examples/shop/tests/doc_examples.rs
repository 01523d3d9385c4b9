//! The `mq publish SendOrderConfirmation '...'` examples of the README and the docs must
//! be bodies this shop's worker can read: every field of the struct, none misspelt.

use std::path::Path;

use shop::SendOrderConfirmation;

/// The files that show `mq publish SendOrderConfirmation`.
const FILES: &[&str] = &["README.md", "docs/cli.md", "docs/wire-format.md"];

/// The JSON bodies of the `mq publish SendOrderConfirmation '...'` examples in `text`.
fn published_bodies(text: &str) -> Vec<&str> {
    text.split("mq publish SendOrderConfirmation '")
        .skip(1)
        .filter_map(|rest| rest.split_once('\'').map(|(body, _)| body))
        .collect()
}

#[test]
fn every_published_example_is_a_send_order_confirmation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut seen = 0;
    for file in FILES {
        let text = std::fs::read_to_string(root.join(file)).expect("read the doc");
        for body in published_bodies(&text) {
            if let Err(error) = serde_json::from_str::<SendOrderConfirmation>(body) {
                panic!("{file}: `{body}` is not a SendOrderConfirmation: {error}");
            }
            seen += 1;
        }
    }
    assert!(seen >= FILES.len(), "found only {seen} examples");
}
