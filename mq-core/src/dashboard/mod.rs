//! The web dashboard: queues, the failure store and the routing table in the browser.
//!
//! [`router`] is the whole dashboard as an axum [`Router`](axum::Router), to mount under a
//! path of the application's own (behind its own authentication, if it has one); [`serve`]
//! binds an address and runs it, as `mq dashboard` does.
//!
//! ```no_run
//! # async fn mount() -> mq::Result<()> {
//! let transport = mq::transport::connect("sqlite://mq.db").await?;
//! let options = mq::dashboard::Options::new()
//!     .token_from_env()
//!     .registry(mq::Registry::linked()?);
//! let app = axum::Router::new().nest("/admin/queues", mq::dashboard::router(transport, options));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! The pages are HTML rendered on the server with `maud` (which escapes every interpolated
//! value unless told otherwise: nothing here tells it otherwise, so an error text of
//! `<script>` is shown as text), styled by one embedded style sheet, and updated by one
//! small embedded script that polls a fragment of the overview. Nothing is built with
//! JavaScript tools, so the dashboard works from `cargo install`.
//!
//! Safe by default: without a token nothing can be changed (retry, remove, flush); with
//! one ([`Options::token`], `MQ_DASHBOARD_TOKEN`), changes need a browser signed in with it
//! (a session cookie) or an `Authorization: Bearer` header, and a form's per-process
//! anti-forgery token plus a same-origin check. Message bodies are shown only to a signed-in
//! operator, or to everyone with [`Options::show_bodies`]. See [`guide::dashboard`](crate::guide::dashboard).

mod actions;
mod auth;
mod chart;
mod error;
mod html;
mod options;
mod pages;
mod router;
mod sampler;
mod search;
mod serve;
mod state;

pub use options::{Options, TOKEN_VAR};
pub use router::router;
pub use serve::{bind, serve};
