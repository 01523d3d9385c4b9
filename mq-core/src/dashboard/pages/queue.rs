//! One queue (`/queues/{name}`): its counts, a peek at its next ready message, and flush.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::{body, envelope_fields, raw_body, Notice};
use crate::dashboard::auth::Viewer;
use crate::dashboard::error::not_found;
use crate::dashboard::html::{self, csrf_field, Nav};
use crate::dashboard::search::encode;
use crate::dashboard::state::AppState;
use crate::envelope::Envelope;
use crate::transport::QueueStats;

/// `GET /queues/{name}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Response {
    let stats = match state.stats().await {
        Ok(stats) => stats,
        Err(outage) => {
            let body = html! { h1 { "Queue " code { (name) } } };
            let page = html::page_with(&viewer, "Queue", Some(Nav::Overview), Some(&outage), body);
            return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
        }
    };
    let routed = state
        .options
        .registry
        .as_ref()
        .is_some_and(|r| r.queues().contains(&name));
    let counts = match stats.into_iter().find(|q| q.queue == name) {
        Some(counts) => counts,
        None if routed => QueueStats::new(name.clone()),
        None => {
            return not_found(
                &viewer,
                &format!("There is no queue named {name:?} on this backend."),
            )
        }
    };
    let peeked = match state.call("peek", state.transport.peek(&name)).await {
        Ok(peeked) => peeked,
        Err(outage) => {
            let body = html! { h1 { "Queue " code { (name) } } };
            let page = html::page_with(&viewer, "Queue", Some(Nav::Overview), Some(&outage), body);
            return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
        }
    };
    let failures = viewer.link(&format!("/failed?queue={}", encode(&name)));
    let body = html! {
        (notice.markup())
        h1 { "Queue " code { (name) } }
        div.cards {
            div.card { div.label { "ready" } div.n { (counts.ready) } }
            div.card { div.label { "reserved" } div.n { (counts.reserved) } }
            div.card { div.label { "delayed" } div.n { (counts.delayed) } }
            div.card.failed { div.label { "failed" } div.n { a href=(failures) { (counts.failed) } } }
        }
        h2 { "Next ready message" }
        @match &peeked {
            None => p.muted #peek { "No ready message: the queue is empty, or every message is reserved or delayed." },
            Some(job) => {
                @let envelope = Envelope::decode(&job.body);
                div.panel #peek { dl.fields {
                    dt { "item" } dd { (job.id) }
                    (envelope_fields(&envelope))
                    @if let Ok(envelope) = &envelope {
                        dt { "attempt" } dd { (envelope.attempt) }
                        dt { "slots to run" } dd {
                            (envelope.slots.as_ref().map_or_else(|| "every slot".to_owned(), |s| s.join(", ")))
                        }
                    }
                } }
                (body(&viewer, &raw_body(&envelope, &job.body)))
            }
        }
        @if viewer.operator {
            h2 { "Flush" }
            form method="post" action=(viewer.link(&format!("/queues/{}/flush", encode(&name)))) {
                (csrf_field(&viewer))
                p.muted { "Deletes every ready and delayed message of this queue; reserved ones and failures stay." }
                button.danger #flush type="submit" { "Flush " (name) }
            }
        }
    };
    let title = format!("Queue {name}");
    html::page(&viewer, &title, Some(Nav::Overview), body).into_response()
}
