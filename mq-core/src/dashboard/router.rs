//! The routes of the dashboard, and the security headers of every answer.

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::options::Options;
use super::state::Shared;
use super::{actions, auth, error, html, pages, sampler};
use crate::transport::Transport;

/// The dashboard over `transport`, as a router to serve alone or to nest under a path of the
/// application's own (`Router::new().nest("/admin/queues", mq::dashboard::router(..))`):
/// every link is made relative to where it is mounted.
///
/// The counts for the chart are sampled from then on by a task of the current tokio runtime
/// (or from the first request, when called outside one); it ends with the router.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// let transport = mq::transport::connect("memory://").await?;
/// let options = mq::dashboard::Options::new().token("s3cret-operator-token");
/// // The application's own router, with its own authentication in front of `/admin`.
/// let app: axum::Router = axum::Router::new()
///     .nest("/admin/queues", mq::dashboard::router(transport, options));
/// # let _ = app;
/// # Ok(()) }
/// ```
pub fn router(transport: Arc<dyn Transport>, options: Options) -> Router {
    let shared = Arc::new(Shared::new(transport, options));
    sampler::ensure_started(&shared);
    Router::new()
        .route("/", get(pages::overview::page))
        .route("/live", get(pages::overview::fragment))
        .route("/api/stats", get(pages::overview::api))
        .route("/failed", get(pages::failures::page))
        .route("/failed/retry", post(actions::retry_matching))
        .route("/failed/remove", post(actions::remove_matching))
        .route("/failed/{id}", get(pages::failed::page))
        .route("/failed/{id}/retry", post(actions::retry_one))
        .route("/failed/{id}/remove", post(actions::remove_one))
        .route("/queues/{name}", get(pages::queue::page))
        .route("/queues/{name}/flush", post(actions::flush))
        .route("/routes", get(pages::routes::page))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/style.css", get(html::style))
        .route("/assets/live.js", get(html::script))
        .fallback(error::no_such_page)
        .layer(axum::middleware::map_response(secure))
        .with_state(shared)
}

/// Headers that keep the pages out of frames and caches, and let only the dashboard's own
/// style sheet and script run, so that even a value that escaped escaping could run nothing.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; \
             connect-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (X_FRAME_OPTIONS, "DENY"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null` on
        // the dashboard's own form posts, which the anti-forgery check refuses.
        (REFERRER_POLICY, "same-origin"),
        (CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
