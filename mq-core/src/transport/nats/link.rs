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
    /// True while connected; set by the client's events.
    up: watch::Receiver<bool>,
}

impl Link {
    /// Adds to `options` the event handler that keeps the returned link current.
    pub(super) fn watch(address: &str, options: ConnectOptions) -> (ConnectOptions, Link) {
        let (tx, up) = watch::channel(true);
        let options = options.event_callback(move |event| {
            match event {
                Event::Connected => {
                    tx.send_replace(true);
                }
                Event::Disconnected | Event::Closed => {
                    tx.send_replace(false);
                }
                _ => {}
            }
            async {}
        });
        let link = Link {
            address: address.to_owned(),
            up,
        };
        (options, link)
    }

    /// Whether `client` is connected now (its own state, updated as the socket closes).
    pub(super) fn is_up(&self, client: &Client) -> bool {
        client.connection_state() == State::Connected && *self.up.borrow()
    }

    /// The error of an operation refused or cut short because the connection is down.
    pub(super) fn down(&self, what: &str) -> Error {
        Error::Unreachable {
            address: self.address.clone(),
            cause: format!(
                "{what}: not connected to the server (the client keeps reconnecting by itself)"
            ),
        }
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
        if !self.is_up(client) {
            return Err(self.down(what));
        }
        let mut up = self.up.clone();
        tokio::select! {
            biased;
            result = work => result,
            _ = up.wait_for(|up| !*up) => Err(self.down(what)),
        }
    }
}
