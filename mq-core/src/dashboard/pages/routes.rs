//! The routing table (`/routes`): message, queue and slots, when the dashboard was given a
//! registry.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::dashboard::auth::Viewer;
use crate::dashboard::html::{self, Nav};
use crate::dashboard::search::encode;
use crate::dashboard::state::AppState;

/// `GET /routes`.
pub(crate) async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let body = match &state.options.registry {
        None => html! {
            h1 { "Routes" }
            div.panel {
                p { "This dashboard was not given a routing table: the " code { "mq" } " command knows no message types." }
                p.muted {
                    "An application shows its own by mounting the dashboard with "
                    code { "mq::dashboard::Options::new().registry(mq::Registry::linked()?)" } "."
                }
            }
        },
        Some(registry) => html! {
            h1 { "Routes" }
            table #routes {
                thead { tr { th { "Message" } th { "Type" } th { "Queue" } th { "Slots" } } }
                tbody {
                    @for route in registry.routes() {
                        @let info = route.info();
                        tr {
                            td { code { (info.name) } }
                            td { code.muted { (info.rust_type) } }
                            td { a href=(viewer.link(&format!("/queues/{}", encode(info.options.queue)))) { (info.options.queue) } }
                            td {
                                @let mut slots = route.slots().peekable();
                                @if slots.peek().is_none() { span.tag.failed { "no slot" } }
                                @for slot in slots { code { (slot.path()) } " " }
                            }
                        }
                    }
                }
            }
        },
    };
    html::page(&viewer, "Routes", Some(Nav::Routes), body).into_response()
}
