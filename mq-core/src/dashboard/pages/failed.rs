//! One failed message (`/failed/{id}`): its envelope, which slots failed (with their errors)
//! and which succeeded, attempts and times, the body, retry and remove.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::{body, envelope_fields, raw_body};
use crate::dashboard::auth::Viewer;
use crate::dashboard::error::not_found;
use crate::dashboard::html::{self, csrf_field, time, Nav};
use crate::dashboard::search::{encode, Entry};
use crate::dashboard::state::AppState;
use crate::Registry;

/// `GET /failed/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Response {
    let Ok(number) = id.parse::<u64>() else {
        return not_found(
            &viewer,
            &format!("There is no failed message with id {id}: ids are numbers."),
        );
    };
    let store = state.transport.failure_store();
    let shown = match state.call("failure show", store.show(number)).await {
        Ok(shown) => shown,
        Err(outage) => {
            let body = html! { h1 { "Failed message " (number) } };
            let page = html::page_with(
                &viewer,
                "Failed message",
                Some(Nav::Failures),
                Some(&outage),
                body,
            );
            return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
        }
    };
    let Some(failed) = shown else {
        return not_found(
            &viewer,
            &format!("There is no failed message with id {number} (retried or removed already?)."),
        );
    };
    let entry = Entry::new(failed);
    let body = html! {
        h1 { "Failed message " (number) }
        (header(&viewer, &entry))
        h2 { "Slots" }
        (fan_out(&entry, state.options.registry.as_deref()))
        (actions(&viewer, number))
        h2 { "Body" }
        (body(&viewer, &raw_body(&entry.envelope, &entry.failed.body)))
    };
    let title = format!("Failed message {number}");
    html::page(&viewer, &title, Some(Nav::Failures), body).into_response()
}

fn header(viewer: &Viewer, entry: &Entry) -> Markup {
    let failed = &entry.failed;
    let retry_runs = match &entry.envelope {
        Ok(envelope) => envelope
            .slots
            .as_ref()
            .map_or_else(|| "every slot".to_owned(), |slots| slots.join(", ")),
        Err(_) => "nothing (undecodable)".to_owned(),
    };
    html! {
        div.panel { dl.fields {
            dt { "queue" } dd { a href=(viewer.link(&format!("/queues/{}", encode(&failed.queue)))) { (failed.queue) } }
            (envelope_fields(&entry.envelope))
            dt { "attempts made" } dd #attempts { (failed.failure.attempts) }
            dt { "failed at" } dd { (time(failed.failure.failed_at)) }
            dt { "reason" } dd #reason { (failed.failure.reason) }
            dt { "a retry runs" } dd { (retry_runs) }
            dt { "a retry puts it" } dd {
                "priority " (failed.options.priority) ", ttr "
                (humantime::format_duration(failed.options.ttr))
            }
        } }
    }
}

/// Which slots failed (with their errors) and which succeeded: the fan-out of the message.
fn fan_out(entry: &Entry, registry: Option<&Registry>) -> Markup {
    let failure = &entry.failed.failure;
    let route = registry.and_then(|r| r.route(entry.name()));
    let succeeded: Vec<&str> = route
        .map(|route| {
            route
                .slots()
                .map(|slot| slot.path())
                .filter(|path| !failure.slots.iter().any(|f| f.slot == *path))
                .collect()
        })
        .unwrap_or_default();
    html! {
        table #slots {
            thead { tr { th { "Slot" } th { "Outcome" } th { "Error of its last attempt" } } }
            tbody {
                @if failure.slots.is_empty() {
                    tr { td colspan="3" .muted { "No slot ran: " (failure.reason) } }
                }
                @for slot in &failure.slots {
                    tr.failed-slot {
                        td { code { (slot.slot) } }
                        td { span.tag.failed { "failed" } }
                        td.error { pre { (slot.error) } }
                    }
                }
                @for path in &succeeded {
                    tr.ok-slot {
                        td { code { (path) } }
                        td { span.tag.ok { "succeeded" } }
                        td.muted { "does not run again on retry" }
                    }
                }
            }
        }
        @if route.is_none() && !failure.slots.is_empty() {
            p.muted {
                "Every other slot of this message succeeded. "
                @if registry.is_none() {
                    "This dashboard has no routing table, so it cannot name them; an application that mounts it with its registry can."
                }
            }
        }
    }
}

fn actions(viewer: &Viewer, id: u64) -> Markup {
    html! {
        @if viewer.operator {
            div.actions {
                form.inline method="post" action=(viewer.link(&format!("/failed/{id}/retry"))) {
                    (csrf_field(viewer)) button #retry type="submit" { "Retry" }
                }
                form.inline method="post" action=(viewer.link(&format!("/failed/{id}/remove"))) {
                    (csrf_field(viewer)) button.danger #remove type="submit" { "Remove" }
                }
            }
        } @else if viewer.actions {
            p.muted { a href=(viewer.link("/login")) { "Sign in" } " to retry or remove it." }
        }
    }
}
