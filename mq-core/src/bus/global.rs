//! The process-wide bus, opened from `MQ_URL` on first use, and the free functions
//! [`dispatch`] and [`dispatch_all`] that use it.

use tokio::sync::OnceCell;

use super::dispatch::{Dispatch, DispatchAll};
use super::options::UniqueKey;
use super::Bus;
use crate::message::Message;
use crate::Result;

static GLOBAL: OnceCell<Bus> = OnceCell::const_new();

/// The process-wide bus: opened from `MQ_URL` on first use.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// std::env::set_var("MQ_URL", "memory://global-doc");
/// let bus = mq::global().await?;
/// assert_eq!(bus.transport().describe(), "memory://global-doc");
/// assert!(std::ptr::eq(bus, mq::global().await?)); // opened once
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`Bus::from_env`]; a failed first use is tried again by the next.
pub async fn global() -> Result<&'static Bus> {
    GLOBAL.get_or_try_init(Bus::from_env).await
}

/// The bus a dispatch names, else the process-wide one.
pub(super) async fn bus_or_global(bus: Option<&Bus>) -> Result<&Bus> {
    match bus {
        Some(bus) => Ok(bus),
        None => global().await,
    }
}

/// Dispatches `message` on the process-wide bus (see [`global`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # std::env::set_var("MQ_URL", "memory://dispatch-doc");
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "emails")]
/// struct SendOrderConfirmation { order_id: u64, to: String }
///
/// let id = mq::dispatch(SendOrderConfirmation { order_id: 7, to: "a@b.c".into() })
///     .delay(std::time::Duration::from_secs(30))
///     .await?;
/// # let stats = mq::global().await?.transport().stats().await?;
/// # assert_eq!((stats[0].queue.as_str(), stats[0].delayed), ("emails", 1));
/// # Ok(()) }
/// ```
pub fn dispatch<M: Message>(message: M) -> Dispatch<'static, M> {
    Dispatch {
        bus: None,
        message,
        delay: None,
        priority: None,
        unique: UniqueKey::default(),
        limit: None,
    }
}

/// Dispatches every message of `messages` together on the process-wide bus (see
/// [`global`]); as [`Bus::dispatch_all`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// # std::env::set_var("MQ_URL", "memory://dispatch-all-doc");
/// # use serde::{Deserialize, Serialize};
/// #[derive(mq::Message, Serialize, Deserialize)]
/// #[message(queue = "search")]
/// struct Reindex { shard: u32 }
///
/// let ids = mq::dispatch_all((0..64).map(|shard| Reindex { shard })).await?;
/// assert_eq!(ids.len(), 64);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`Bus::dispatch_all`], and as [`global`] when `MQ_URL` cannot be opened (even for an
/// empty batch).
pub fn dispatch_all<M, I>(messages: I) -> DispatchAll<'static, M>
where
    M: Message,
    I: IntoIterator<Item = M>,
{
    DispatchAll::new(None, messages)
}
