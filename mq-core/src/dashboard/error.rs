//! Pages that say what went wrong: not found (an unknown id, queue or path), refused (no
//! token, forged request), bad input; each with its status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::auth::Viewer;
use super::html;

/// A page with `title` and the sentence `text`, answered with `status`.
pub(crate) fn error_page(viewer: &Viewer, status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        h1 { (title) }
        div.panel {
            p { (text) }
            p { a href=(viewer.link("/")) { "Back to the queues" } }
        }
    };
    (status, html::page(viewer, title, None, body)).into_response()
}

/// A 404 page saying `text`.
pub(crate) fn not_found(viewer: &Viewer, text: &str) -> Response {
    error_page(viewer, StatusCode::NOT_FOUND, "Not found", text)
}

/// The router's fallback: a path the dashboard does not have.
pub(crate) async fn no_such_page(viewer: Viewer) -> Response {
    not_found(&viewer, "The dashboard has no such page.")
}
