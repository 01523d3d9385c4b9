//! Whether the client is connected to a server, so that nothing waits on a network that is
//! gone: a request made while the connection is down fails at once, and one in flight fails
//! the moment the connection drops, instead of waiting out its 5 s timeout. The client
//! reconnects by itself (to any seed server); requests work again from then on.

use std::future::Future;

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event};
use tokio::sync::watch;

use crate::{Error, Result};

/// The connection's state as the client reports it, for every request of a transport.
#[derive(Debug, Clone)]
pub(super) struct Link {
    /// Where the transport points, for errors.
    address: String,
    /// How many times the connection dropped; the client's events count it.
    drops: watch::Receiver<u64>,
}

impl Link {
    /// Adds to `options` the event handler that keeps the returned link current.
    pub(super) fn watch(address: &str, options: ConnectOptions) -> (ConnectOptions, Link) {
        let (tx, drops) = watch::channel(0);
        let options = options.event_callback(move |event| {
            if matches!(event, Event::Disconnected | Event::Closed) {
                tx.send_modify(|drops| *drops += 1);
            }
            async {}
        });
        let link = Link {
            address: address.to_owned(),
            drops,
        };
        (options, link)
    }

    /// Whether `client` is connected now: its own state, which it sets as the socket closes
    /// and again once it has reconnected.
    pub(super) fn is_up(&self, client: &Client) -> bool {
        client.connection_state() == State::Connected
    }

    /// The error of an operation refused or cut short because the connection is down.
    pub(super) fn down(&self, what: &str) -> Error {
        Error::unreachable(
            self.address.clone(),
            format!(
                "{what}: not connected to the server (the client keeps reconnecting by itself)"
            ),
        )
    }

    /// Runs `work` unless the connection is down, and fails it as soon as the connection
    /// drops while it runs. Dropping `work` midway is safe for every caller: what a request
    /// cut short did on the server is unknown, as for any request whose answer was lost.
    pub(super) async fn bounded<T>(
        &self,
        client: &Client,
        what: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let mut drops = self.drops.clone();
        drops.mark_unchanged();
        if !self.is_up(client) {
            return Err(self.down(what));
        }
        tokio::select! {
            biased;
            result = work => result,
            () = dropped(&mut drops) => Err(self.down(what)),
        }
    }
}

/// Resolves when the connection drops next; never, once the client is gone.
async fn dropped(drops: &mut watch::Receiver<u64>) {
    if drops.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
