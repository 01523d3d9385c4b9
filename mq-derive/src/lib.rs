//! The macros of mq: `#[derive(Message)]` and `#[slot]`.
//!
//! Each goes parse → check → expand, a module per stage. No macro panics: every failure is
//! a `syn::Error` spanned at the user's token, and the item is still emitted, so one mistake
//! gives one error. Generated code names only `::mq::__private` (or `<path>::__private`
//! with `crate = "path"`).

mod duration;
mod errors;
mod krate;
mod message;
mod slot;
mod symbol;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Implements `mq::Message` and registers the type with the worker's registry.
///
/// Options, all optional: `#[message(name = "Wire", queue = "emails", priority = 100,
/// delay = "30s", ttr = "2m", timeout = "90s", retries = 5, backoff = "2s",
/// backoff_max = "10m")]`; `crate = "my_mq"` when the crate renamed its dependency on
/// mq-core (generated code then names `my_mq` instead of `mq`). An unknown key, a repeated key or a bad value is a compile error
/// at that key or value (all of them at once); `mq-derive/tests/ui/message/` pins each one.
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    message::derive(&input).into()
}

/// Registers a function as a slot of the message type of its first argument.
///
/// The function is free (no `self`), not generic, `async` or not; it takes the message by
/// value or as `&Message`, then any of `mq::Context` and `mq::State<T>`, and returns `()` or
/// `Result<(), E>` with `E: Display`. Anything else is a compile error at the offending
/// token; `mq-derive/tests/ui/slot/` pins each one. Its one option is
/// `#[mq::slot(crate = "my_mq")]`, for a crate that renamed its dependency on mq-core.
#[proc_macro_attribute]
pub fn slot(args: TokenStream, input: TokenStream) -> TokenStream {
    slot::expand(args.into(), input.into()).into()
}
