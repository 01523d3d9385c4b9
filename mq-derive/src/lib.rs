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
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "emails", priority = 100, ttr = "2m", retries = 5)]
/// struct SendOrderConfirmation {
///     order_id: u64,
/// }
/// ```
///
/// The type must also derive `serde::Serialize` and `serde::Deserialize` (mq sends it as
/// JSON), own its data, and be `Send + Sync + 'static`; it cannot be generic or a union.
///
/// # Options
///
/// All optional, in `#[message(...)]`; durations are strings such as `"500ms"`, `"30s"`,
/// `"2m"`, `"1h30m"` (units `ms`, `s`, `m`, `h`, `d`).
///
/// | Option | Type | Default | Meaning |
/// |---|---|---|---|
/// | `name` | string | the type's name | the wire name in the envelope |
/// | `queue` | string | `"default"` | the queue (beanstalkd tube): 1 to 200 letters, digits and `-+/;.$_()`, not starting with `-` |
/// | `priority` | `u32` | `1024` | lower is sooner |
/// | `delay` | duration | `"0s"` | how long a dispatched message waits before it is ready |
/// | `ttr` | duration, at least `"1s"` | `"60s"` | time to run: a reservation lasts this long and is kept alive at half of it |
/// | `timeout` | duration, above zero | none | a slot that runs longer is cancelled; the attempt fails |
/// | `retries` | `u32` | the worker's (3) | retries after the first attempt |
/// | `backoff` | duration | the worker's | first delay of the exponential backoff between attempts (`"1s"` when only `backoff_max` is given) |
/// | `backoff_max` | duration | the worker's | longest delay between attempts (`"10m"` when only `backoff` is given) |
/// | `version` | `u32`, at least 1 | `1` | the version of the message's shape this build writes (the envelope's `message_version`) |
/// | `previous` | `(N = Type, ...)` | none | older versions this build reads: each body is read as `Type` (`serde::Deserialize`), then made the message by `impl From<Type> for Message` (the upcaster); needs `version`, each `N` below it |
/// | `concurrency` | `u32`, at least 1 | none | at most this many messages of the type run their slots at once, across every worker on the backend: per value of `concurrency_key`, else for the whole type |
/// | `concurrency_key` | field names | none | the fields whose values make the concurrency key, e.g. `"customer_id"` or `"customer, region"`; needs `concurrency` |
/// | `rate_limit` | `u32`, at least 1 | none | at most this many messages of the type start their slots per second, across every worker: per value of `rate_key`, else for the whole type |
/// | `rate_key` | field names | none | the fields whose values make the rate key; needs `rate_limit` |
/// | `crate` | path string | `mq` | the name a crate gave its dependency on mq-core, e.g. `crate = "my_mq"` |
///
/// # Versions
///
/// A message whose shape changed reads the older shapes still queued through their old
/// types and a `From` impl each:
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct OrderPlacedV1 {
///     id: u64,
/// }
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(version = 2, previous(1 = OrderPlacedV1))]
/// struct OrderPlaced {
///     id: u64,
///     cents: u64,
/// }
///
/// impl From<OrderPlacedV1> for OrderPlaced {
///     fn from(old: OrderPlacedV1) -> Self {
///         OrderPlaced { id: old.id, cents: 0 }
///     }
/// }
/// ```
///
/// # Per-key limits
///
/// A message held back by a limit waits on its queue a moment and is tried again: no
/// failure, no retry spent. The keys carry the wire name (`CallApi:acme`, or `CallApi` for
/// a limit of the whole type), so two types never share permits. They need a backend that
/// keeps permits (SQLite, PostgreSQL, memory); elsewhere a dispatch is refused, and a
/// worker does not start.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(concurrency = 2, concurrency_key = "customer", rate_limit = 50)]
/// struct CallApi {
///     customer: String,
///     path: String,
/// }
///
/// use mq::Message as _;
/// assert_eq!((CallApi::OPTIONS.concurrency, CallApi::OPTIONS.rate), (Some(2), Some(50)));
/// ```
///
/// # Compile errors
///
/// Every bad key and value is reported at once, each at its token; the words, and the fix:
///
/// - ``unknown `#[message]` key `queu`; valid keys are `name`, `queue`, …``: spell the key
///   as listed.
/// - ``duplicate `#[message]` key `queue`: give it once``.
/// - ``` `#[message]` key `queue` needs a value, e.g. `queue = "emails"` ```, and
///   ``` `#[message]` takes a list of options ```: write `key = value`.
/// - `` `priority` takes a whole number from 0 to 4294967295 `` (or ``… takes a string
///   literal``): give the value the type of the table above.
/// - `` `priority = 5000000000` is out of range ``: stay within `u32`.
/// - ``` `ttr = "soon"` is not a duration ```: a number and a unit, e.g. `"2m"`.
/// - `` `ttr` must be at least 1s ``; `` `timeout` must be longer than zero `` (the same for
///   `backoff`, `backoff_max`): raise it, or leave the key out.
/// - `` `order emails` is not a valid queue name ``; ``a wire name must be non-empty text
///   without control characters``: change the text.
/// - ``` `crate = "not a path"` is not a path ```: write the dependency's name.
/// - `` `concurrency = 0` would never run a message `` (the same for `rate_limit`): write 1
///   or more, or leave the key out.
/// - `` `CallApi` has no field `client` to make a concurrency key of `` (or a rate key, or a
///   unique key): name fields of the type; `` `concurrency_key` takes the names of the
///   fields ``: write them as `"customer, region"`; `` `concurrency_key` names fields, so it
///   needs a struct with named fields ``: give the key at dispatch.
/// - `` `concurrency_key` names the fields a limit counts by, and there is no limit `` (or
///   `rate_key`): add `concurrency = N` (`rate_limit = R`).
/// - ``` `version = 0` is not a version ```: versions start at 1.
/// - ``` `previous(...)` needs the current version ```: add `version = N` above every
///   version listed; ``previous version 3 is not older than `version = 2` ``: list only
///   older versions; ``version 1 is listed twice in `previous(...)` ``: give each one type;
///   ``` `previous` lists `VERSION = Type` ```: write `previous(1 = OrderPlacedV1)`.
/// - `` `OrderPlaced` has no upcaster from its older shape `OrderPlacedV1` ``, at the type in
///   `previous(...)`: write `impl From<OrderPlacedV1> for OrderPlaced`; and
///   `` `OrderPlacedV1`, an older shape of a message, must derive serde's `Deserialize` ``.
/// - ``#[derive(mq::Message)] does not support generic types`` / ``unions``: define one
///   concrete struct or enum per message.
/// - `` `Ping` must derive serde's `Serialize` to be an mq message `` (and the same for
///   `Deserialize`): add `#[derive(serde::Serialize, serde::Deserialize)]`.
///
/// A compile-fail test of the repository pins each one. For example, a missing serde derive:
///
/// ```compile_fail,E0277
/// #[derive(mq::Message)]
/// struct Ping {
///     id: u64,
/// }
/// ```
///
/// and a misspelt key:
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queu = "emails")]
/// struct Ping;
/// ```
///
/// and a limit of 0:
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(concurrency = 0, concurrency_key = "customer")]
/// struct CallApi {
///     customer: String,
/// }
/// ```
///
/// and an older shape without its upcaster:
///
/// ```compile_fail,E0277
/// # use serde::{Deserialize, Serialize};
/// #[derive(Deserialize)]
/// struct OrderPlacedV1 {
///     id: u64,
/// }
///
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(version = 2, previous(1 = OrderPlacedV1))] // no `impl From<OrderPlacedV1>`
/// struct OrderPlaced {
///     id: u64,
///     cents: u64,
/// }
/// ```
#[proc_macro_derive(Message, attributes(message))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    message::derive(&input).into()
}

/// Registers a function as a slot of the message type of its first argument.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)]
/// # struct SendOrderConfirmation { order_id: u64 }
/// # #[derive(Debug)] struct Mailer;
/// #[mq::slot]
/// async fn send(
///     msg: SendOrderConfirmation,
///     mailer: mq::State<Mailer>,
///     ctx: mq::Context,
/// ) -> Result<(), std::io::Error> {
///     let _ = (msg.order_id, mailer, ctx);
///     Ok(())
/// }
///
/// #[mq::slot]
/// fn audit(msg: &SendOrderConfirmation) {
///     let _ = msg.order_id;
/// }
/// ```
///
/// The function is free (no `self`), not generic, `async` or not (a plain `fn` runs on the
/// blocking pool); it takes the message by value or as `&Message`, then any of
/// `mq::Context` and `mq::State<T>`, and returns `()` or `Result<(), E>` with
/// `E: Display`. Its one option is `#[mq::slot(crate = "my_mq")]`, for a crate that renamed
/// its dependency on mq-core.
///
/// # Compile errors
///
/// Each at the offending token; the words, and the fix:
///
/// - ``#[mq::slot] goes on a free function, not on a struct``: put it on a `fn`.
/// - ``#[mq::slot] takes no option but `crate = "..."` ``: put queue and retry options on
///   the message's `#[message(...)]`.
/// - ``a slot takes the message as its first argument``: add it.
/// - ``a slot cannot take `self` ``: make it a free function; pass state as
///   `mq::State<T>`.
/// - ``a slot cannot be generic`` / ``cannot have lifetime parameters``: one slot per
///   concrete message type, the message by value or `&Message`.
/// - ``a slot cannot take `impl Trait` ``: name the type.
/// - ``a slot takes its message by value or by shared reference, not `&mut` ``: remove
///   `mut`.
/// - ``a slot cannot be `unsafe` `` / ``variadic``: remove it.
/// - `` `Order` is not an mq message ``: add
///   `#[derive(mq::Message, serde::Serialize, serde::Deserialize)]` to `Order`.
/// - `` `String` cannot be a slot parameter ``: after the message, take only `mq::Context`
///   and `mq::State<T>`.
/// - `` `i32` is not a valid slot return type ``: return `()` or `Result<(), E>`.
/// - `` `NotDisplay` cannot be a slot's error type: it does not implement
///   `std::fmt::Display` ``: implement `Display` for it, or return
///   `Result<(), mq::SlotError>`.
/// - ``future cannot be sent between threads safely`` (rustc's words; the note quotes mq's
///   "hold no Rc, RefCell or MutexGuard across an .await in a slot, or make the slot a
///   sync fn"): drop the value before the `.await`, use `Arc` / `tokio::sync::Mutex`, or
///   make the slot a plain `fn`.
///
/// A compile-fail test of the repository pins each one. For example, a slot of a type that
/// is not a message:
///
/// ```compile_fail,E0277
/// struct Order {
///     id: u64,
/// }
///
/// #[mq::slot]
/// fn handle(msg: Order) {
///     let _ = msg.id;
/// }
/// ```
///
/// and a slot that takes its message as `&mut`:
///
/// ```compile_fail
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Order;
/// #[mq::slot]
/// fn handle(msg: &mut Order) {}
/// ```
#[proc_macro_attribute]
pub fn slot(args: TokenStream, input: TokenStream) -> TokenStream {
    slot::expand(args.into(), input.into()).into()
}
