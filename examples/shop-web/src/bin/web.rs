//! The shop's web server: `cargo run -p shop-web --bin web` (on `MQ_URL`, default
//! [`shop_web::DEFAULT_URL`]; listens on `127.0.0.1:3000` or `SHOP_ADDR`).
//!
//! `POST /orders {"to": "...", "total_cents": N}` stores the order and dispatches its
//! confirmation in one transaction. An order of 0 cents is refused after it was stored, to
//! show a rollback: the order is gone and no e-mail is queued. `GET /orders` counts them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shop_web::SendOrderConfirmation;
use sqlx::PgPool;

#[derive(Clone)]
struct App {
    pool: PgPool,
    bus: mq::Bus,
}

#[derive(Deserialize)]
struct NewOrder {
    to: String,
    total_cents: i64,
}

#[derive(Serialize)]
struct Placed {
    order_id: i64,
    message_id: String,
}

type Failure = (StatusCode, String);

fn internal(error: impl std::fmt::Display) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// Stores the order and queues its confirmation: both or neither.
async fn place_order(
    State(app): State<App>,
    Json(order): Json<NewOrder>,
) -> Result<(StatusCode, Json<Placed>), Failure> {
    let mut tx = app.pool.begin().await.map_err(internal)?;
    let order_id: i64 =
        sqlx::query_scalar("INSERT INTO orders (email, total_cents) VALUES ($1, $2) RETURNING id")
            .bind(&order.to)
            .bind(order.total_cents)
            .fetch_one(&mut *tx)
            .await
            .map_err(internal)?;
    let message_id = app
        .bus
        .dispatch(SendOrderConfirmation {
            order_id,
            to: order.to,
            total_cents: order.total_cents,
        })
        .within(&mut tx)
        .await
        .map_err(internal)?;
    if order.total_cents <= 0 {
        // Dropping `tx` rolls back the order and its message together.
        return Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("order {order_id} has no total: rolled back, no e-mail queued\n"),
        ));
    }
    tx.commit().await.map_err(internal)?;
    println!("web: order {order_id} stored, confirmation queued as message {message_id}");
    Ok((
        StatusCode::CREATED,
        Json(Placed {
            order_id,
            message_id: message_id.to_string(),
        }),
    ))
}

async fn count_orders(State(app): State<App>) -> Result<String, Failure> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&app.pool)
        .await
        .map_err(internal)?;
    Ok(format!("{count} orders\n"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mq::init_logging();
    let url = shop_web::url();
    let bus = mq::Bus::connect(&url).await?;
    let pool = PgPool::connect(shop_web::database_url(&url)).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, email text NOT NULL, \
         total_cents bigint NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let app = Router::new()
        .route("/orders", post(place_order).get(count_orders))
        .with_state(App { pool, bus });
    let address = std::env::var("SHOP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("web: listening on http://{address} (POST /orders, GET /orders)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
