//! The failure store (`/failed`): searchable by message name, slot, error text and queue,
//! paged, with retry and remove of everything that matches.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::Notice;
use crate::dashboard::auth::Viewer;
use crate::dashboard::html::{self, clip, csrf_field, time, Nav};
use crate::dashboard::search::{self, encode, Found, Search, SCAN_LIMIT};
use crate::dashboard::state::AppState;

/// `GET /failed`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(search): Query<Search>,
    Query(notice): Query<Notice>,
) -> Response {
    let store = state.transport.failure_store();
    let listed = state
        .call("failure list", store.list(None, SCAN_LIMIT))
        .await;
    let (status, outage, found) = match listed {
        Ok(listed) => (StatusCode::OK, None, Some(search::find(listed, &search))),
        Err(outage) => (StatusCode::SERVICE_UNAVAILABLE, Some(outage), None),
    };
    let body = html! {
        (notice.markup())
        h1 { "Failures" }
        (form(&viewer, &search))
        @if let Some(found) = &found { (results(&viewer, &search, found)) }
    };
    let page = html::page_with(
        &viewer,
        "Failures",
        Some(Nav::Failures),
        outage.as_ref(),
        body,
    );
    (status, page).into_response()
}

fn form(viewer: &Viewer, search: &Search) -> Markup {
    html! {
        form.search method="get" action=(viewer.link("/failed")) role="search" {
            label { "Message" input type="search" name="message" value=(search.message) placeholder="SendOrderConfirmation"; }
            label { "Slot" input type="search" name="slot" value=(search.slot) placeholder="mail::send"; }
            label { "Error text" input type="search" name="error" value=(search.error) placeholder="timeout"; }
            label { "Queue" input type="search" name="queue" value=(search.queue) placeholder="emails"; }
            button type="submit" { "Search" }
            @if search.is_narrowed() { a href=(viewer.link("/failed")) { "Clear" } }
        }
    }
}

fn results(viewer: &Viewer, search: &Search, found: &Found) -> Markup {
    let query = search.query();
    let page_link = |page: usize| {
        let sep = if query.is_empty() { "" } else { "&" };
        viewer.link(&format!("/failed?{query}{sep}page={page}"))
    };
    html! {
        @if found.truncated {
            p.note { "The store holds more than " (SCAN_LIMIT) " entries: only the oldest " (SCAN_LIMIT) " are searched. Use " code { "mq failed" } " for the rest." }
        }
        p #matched .muted {
            (found.matched) @if found.matched == 1 { " failed message" } @else { " failed messages" }
            @if search.is_narrowed() { " match" }
            " · newest first"
        }
        @if found.matched > 0 { (bulk(viewer, search, found.matched)) }
        table #failures {
            thead { tr {
                th.num { "ID" } th { "Queue" } th { "Message" } th { "Failed slots" } th { "Error" }
                th.num { "Attempts" } th { "Failed at" }
            } }
            tbody {
                @if found.entries.is_empty() {
                    tr { td colspan="7" .muted {
                        @if search.is_narrowed() { "Nothing matches this search." } @else { "The failure store is empty." }
                    } }
                }
                @for entry in &found.entries {
                    @let failed = &entry.failed;
                    tr data-id=(failed.id) {
                        td.num { a href=(viewer.link(&format!("/failed/{}", failed.id))) { (failed.id) } }
                        td { a href=(viewer.link(&format!("/queues/{}", encode(&failed.queue)))) { (failed.queue) } }
                        td { code { (entry.name()) } }
                        td {
                            @if failed.failure.slots.is_empty() { span.muted { "none ran" } }
                            @for slot in &failed.failure.slots { code { (slot.slot) } " " }
                        }
                        td.error { (clip(entry.first_error(), 160)) }
                        td.num { (failed.failure.attempts) }
                        td { (time(failed.failure.failed_at)) }
                    }
                }
            }
        }
        @if found.pages > 1 {
            nav.pager {
                @if found.page > 1 { a rel="prev" href=(page_link(found.page - 1)) { "← Newer" } }
                span { "page " (found.page) " of " (found.pages) }
                @if found.page < found.pages { a rel="next" href=(page_link(found.page + 1)) { "Older →" } }
            }
        }
    }
}

/// Retry or remove every entry that matches: for an operator; a hint for others.
fn bulk(viewer: &Viewer, search: &Search, matched: usize) -> Markup {
    let fields = html! {
        (csrf_field(viewer))
        input type="hidden" name="message" value=(search.message);
        input type="hidden" name="slot" value=(search.slot);
        input type="hidden" name="error" value=(search.error);
        input type="hidden" name="queue" value=(search.queue);
    };
    html! {
        @if viewer.operator {
            div.actions {
                form.inline method="post" action=(viewer.link("/failed/retry")) {
                    (fields) button #retry-matching type="submit" { "Retry all " (matched) " matching" }
                }
                form.inline method="post" action=(viewer.link("/failed/remove")) {
                    (fields) button.danger #remove-matching type="submit" { "Remove all " (matched) " matching" }
                }
            }
        } @else if viewer.actions {
            p.muted { a href=(viewer.link("/login")) { "Sign in" } " to retry or remove them." }
        }
    }
}
