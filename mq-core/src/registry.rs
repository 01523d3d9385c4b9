//! The routing table: every message type and slot the binary links, by wire name.
//!
//! `#[derive(Message)]` submits a [`MessageDef`] and `#[slot]` a
//! [`SlotDef`](crate::SlotDef), both through `inventory`. A slots-only crate whose items the
//! binary never names may not be linked at all; name it with `use my_slots as _;`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::message::MessageInfo;
use crate::slot::SlotDef;
use crate::{Error, Result};

/// The registry's record of one message type, submitted by `#[derive(Message)]`.
#[derive(Debug, Clone, Copy)]
pub struct MessageDef {
    info: fn() -> MessageInfo,
    /// For a recurring message: dispatches one tick's message.
    tick: Option<TickFn>,
}

/// Dispatches a recurring message's `Default` with a unique key, held for the duration.
pub(crate) type TickFn = fn(
    crate::Bus,
    String,
    std::time::Duration,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<crate::MessageId>> + Send>,
>;

impl MessageDef {
    /// The record of `M`.
    pub const fn of<M: crate::Message>() -> MessageDef {
        MessageDef {
            info: MessageInfo::of::<M>,
            tick: None,
        }
    }

    /// The record of `M`, a recurring message (`#[message(schedule = "...")]`).
    pub const fn scheduled<M: crate::message::ScheduledMessage>() -> MessageDef {
        MessageDef {
            info: MessageInfo::of::<M>,
            tick: Some(tick::<M>),
        }
    }
}

fn tick<M: crate::message::ScheduledMessage>(
    bus: crate::Bus,
    key: String,
    hold: std::time::Duration,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<crate::MessageId>> + Send>> {
    Box::pin(async move {
        let dispatch = bus.dispatch(M::for_tick()).unique(key).unique_for(hold);
        dispatch.await
    })
}

/// The recurring messages linked into the binary, with what dispatches a tick of each.
pub(crate) fn scheduled() -> impl Iterator<Item = (MessageInfo, TickFn)> {
    inventory::iter::<MessageDef>
        .into_iter()
        .filter_map(|def| Some(((def.info)(), def.tick?)))
}

inventory::collect!(MessageDef);

/// One message type and the slots that listen for it.
#[derive(Debug, Clone)]
pub struct Route {
    info: MessageInfo,
    slots: Vec<SlotDef>,
}

impl Route {
    /// The message type.
    pub fn info(&self) -> &MessageInfo {
        &self.info
    }

    /// Its slots, sorted by path.
    pub fn slots(&self) -> impl Iterator<Item = &SlotDef> {
        self.slots.iter()
    }

    pub(crate) fn slot(&self, path: &str) -> Option<&SlotDef> {
        self.slots.iter().find(|slot| slot.path == path)
    }
}

/// Message types and slots by wire name.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
/// #[mq::slot]
/// fn pong(_: Ping) {}
///
/// let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
/// assert_eq!(registry.queues(), ["default"]);
/// # Ok::<(), mq::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    routes: BTreeMap<&'static str, Route>,
}

impl Registry {
    /// Every message type and slot linked into this binary.
    ///
    /// # Errors
    ///
    /// [`Error::Registry`] when two message types share a wire name.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(mq::Message, Serialize, Deserialize)]
    /// struct Ping;
    ///
    /// #[mq::slot]
    /// fn pong(_: Ping) {}
    ///
    /// let registry = mq::Registry::linked()?;
    /// let route = registry.route("Ping").expect("linked by the derive");
    /// assert!(route.slots().any(|slot| slot.path().ends_with("::pong")));
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn linked() -> Result<Registry> {
        let messages = inventory::iter::<MessageDef>
            .into_iter()
            .map(|def| (def.info)());
        Registry::build(messages, inventory::iter::<SlotDef>.into_iter().copied())
    }

    /// A registry of exactly these slots (and their message types), for tests.
    ///
    /// # Errors
    ///
    /// As [`Registry::linked`].
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Ping;
    /// # #[derive(mq::Message, Serialize, Deserialize)] struct Other;
    /// #[mq::slot]
    /// fn pong(_: Ping) {}
    /// #[mq::slot]
    /// fn other(_: Other) {}
    ///
    /// let registry = mq::Registry::from_slots([mq::SlotDef::of::<pong>()])?;
    /// assert!(registry.route("Ping").is_some());
    /// assert!(registry.route("Other").is_none()); // linked, but not given
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn from_slots(slots: impl IntoIterator<Item = SlotDef>) -> Result<Registry> {
        Registry::build(std::iter::empty(), slots)
    }

    fn build(
        messages: impl Iterator<Item = MessageInfo>,
        slots: impl IntoIterator<Item = SlotDef>,
    ) -> Result<Registry> {
        let mut registry = Registry::default();
        for info in messages {
            registry.add_message(info)?;
        }
        for slot in slots {
            let route = registry.add_message(slot.message())?;
            if !route.slots.iter().any(|known| known.path == slot.path) {
                route.slots.push(slot);
            }
        }
        for route in registry.routes.values_mut() {
            route.slots.sort_by_key(|slot| slot.path);
        }
        Ok(registry)
    }

    fn add_message(&mut self, info: MessageInfo) -> Result<&mut Route> {
        let route = self.routes.entry(info.name).or_insert_with(|| Route {
            info,
            slots: Vec::new(),
        });
        if route.info.rust_type != info.rust_type {
            let (first, second) = sorted(route.info.rust_type, info.rust_type);
            return Err(Error::Registry(format!(
                "two message types have the wire name `{}`: `{first}` and `{second}`; \
                 give one of them another with #[message(name = \"...\")]",
                info.name
            )));
        }
        Ok(route)
    }

    /// The route of a wire name.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// # #[mq::slot] fn welcome(_: &Welcome) {}
    /// # #[mq::slot] fn audit(_: &OrderPlaced) {}
    /// # #[mq::slot] fn ship(_: &OrderPlaced) {}
    /// use mq::{Registry, SlotDef};
    ///
    /// let registry = Registry::from_slots([
    ///     SlotDef::of::<welcome>(),
    ///     SlotDef::of::<ship>(),
    ///     SlotDef::of::<audit>(),
    /// ])?;
    /// let route = registry.route("OrderPlaced").unwrap();
    /// assert_eq!(route.info().options.queue, "orders");
    /// let slots: Vec<&str> = route.slots().map(|slot| slot.path()).collect();
    /// assert!(slots[0].ends_with("::audit") && slots[1].ends_with("::ship")); // by path
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    /// Every route, by wire name.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// # #[mq::slot] fn welcome(_: &Welcome) {}
    /// # #[mq::slot] fn audit(_: &OrderPlaced) {}
    /// # #[mq::slot] fn ship(_: &OrderPlaced) {}
    /// use mq::{Registry, SlotDef};
    ///
    /// let registry = Registry::from_slots([
    ///     SlotDef::of::<welcome>(),
    ///     SlotDef::of::<ship>(),
    ///     SlotDef::of::<audit>(),
    /// ])?;
    /// let names: Vec<&str> = registry.routes().map(|route| route.info().name).collect();
    /// assert_eq!(names, ["OrderPlaced", "Welcome"]);
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }

    /// The queues that have at least one slot here, sorted.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// # #[mq::slot] fn welcome(_: &Welcome) {}
    /// # #[mq::slot] fn audit(_: &OrderPlaced) {}
    /// # #[mq::slot] fn ship(_: &OrderPlaced) {}
    /// use mq::{Registry, SlotDef};
    ///
    /// let registry = Registry::from_slots([
    ///     SlotDef::of::<welcome>(),
    ///     SlotDef::of::<ship>(),
    ///     SlotDef::of::<audit>(),
    /// ])?;
    /// assert_eq!(registry.queues(), ["emails", "orders"]);
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = self
            .routes
            .values()
            .filter(|route| !route.slots.is_empty())
            .map(|route| route.info.options.queue.to_owned())
            .collect();
        queues.sort();
        queues.dedup();
        queues
    }

    /// The routing table as aligned text: wire name, Rust type, queue, slots.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "emails")]
    /// # struct Welcome { to: String }
    /// # #[derive(mq::Message, Serialize, Deserialize)]
    /// # #[message(queue = "orders")]
    /// # struct OrderPlaced { id: u64 }
    /// # #[mq::slot] fn welcome(_: &Welcome) {}
    /// # #[mq::slot] fn audit(_: &OrderPlaced) {}
    /// # #[mq::slot] fn ship(_: &OrderPlaced) {}
    /// use mq::{Registry, SlotDef};
    ///
    /// let registry = Registry::from_slots([
    ///     SlotDef::of::<welcome>(),
    ///     SlotDef::of::<ship>(),
    ///     SlotDef::of::<audit>(),
    /// ])?;
    /// let table = registry.table();
    /// assert!(table.starts_with("MESSAGE"));
    /// assert_eq!(table.lines().count(), 3); // the header and two messages
    /// # Ok::<(), mq::Error>(())
    /// ```
    pub fn table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .routes
            .values()
            .map(|route| {
                let slots: Vec<&str> = route.slots.iter().map(|slot| slot.path).collect();
                [
                    route.info.name.to_owned(),
                    route.info.rust_type.to_owned(),
                    route.info.options.queue.to_owned(),
                    if slots.is_empty() {
                        "(no slot)".to_owned()
                    } else {
                        slots.join(", ")
                    },
                ]
            })
            .collect();
        let header = ["MESSAGE", "TYPE", "QUEUE", "SLOTS"].map(str::to_owned);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                out,
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
        }
        out
    }
}

fn sorted<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}
