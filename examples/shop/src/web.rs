//! The web app: `POST /orders {"to": "...", "total_cents": N}` dispatches the order's
//! confirmation and answers `201` with the order's number and the message id; `GET /` says
//! how to use it. The web app does not send the mail: the worker does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::SendOrderConfirmation;

/// Where the web app listens unless `SHOP_ADDR` says otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// The number of the first order; a real shop takes it from its database.
const FIRST_ORDER: u64 = 1001;

const USAGE: &str = "The mq example shop. Place an order:

  curl -H 'content-type: application/json' -d '{\"to\":\"ada@example.com\",\"total_cents\":4200}' http://ADDR/orders

The worker (the `worker` binary of this crate) prints its confirmation mail.
";

#[derive(Deserialize)]
struct NewOrder {
    to: String,
    total_cents: u64,
}

#[derive(Serialize)]
struct Placed {
    order_id: u64,
    message_id: String,
}

#[derive(Clone)]
struct App {
    address: Arc<str>,
    next_order: Arc<AtomicU64>,
}

/// The shop's routes, for a server listening on `address`.
pub fn router(address: &str) -> Router {
    Router::new()
        .route("/", get(usage))
        .route("/orders", post(place_order))
        .with_state(App {
            address: address.into(),
            next_order: Arc::new(AtomicU64::new(FIRST_ORDER)),
        })
}

async fn usage(State(app): State<App>) -> String {
    USAGE.replace("ADDR", &app.address)
}

/// Queues the order's confirmation and answers with its message id, one JSON line.
async fn place_order(
    State(app): State<App>,
    Json(order): Json<NewOrder>,
) -> Result<impl IntoResponse, (StatusCode, String)> {
    let order_id = app.next_order.fetch_add(1, Ordering::Relaxed);
    let message_id = mq::dispatch(SendOrderConfirmation {
        order_id,
        to: order.to,
        total_cents: order.total_cents,
    })
    .await
    .map_err(|error| (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")))?;
    println!("web: order {order_id} placed, confirmation queued as message {message_id}");
    let placed = Placed {
        order_id,
        message_id: message_id.to_string(),
    };
    let body = serde_json::to_string(&placed)
        .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")))?;
    Ok((
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body + "\n",
    ))
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM: when the server stops taking requests.
pub async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                () = interrupt => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    interrupt.await;
}
