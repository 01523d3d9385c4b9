//! A transport as [`Any`]: the one way from the backend-neutral seam to a backend's own type,
//! for code that knows which backend it has (dispatch inside a PostgreSQL transaction).

use std::any::Any;

/// A transport as [`Any`], so that code which knows one backend can reach it (dispatch inside
/// a PostgreSQL transaction); every transport has it. Call it on the transport, not on its
/// `Arc`: `bus.transport().as_ref().as_any()`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> mq::Result<()> {
/// use mq::transport::{memory::MemoryTransport, AsAny as _};
///
/// let bus = mq::Bus::connect("memory://as-any-doc").await?;
/// let memory = bus.transport().as_ref().as_any().downcast_ref::<MemoryTransport>();
/// assert!(memory.is_some());
/// # Ok(()) }
/// ```
pub trait AsAny {
    /// `self` as `&dyn Any`.
    ///
    /// ```
    /// use mq::transport::{memory::MemoryTransport, AsAny as _, Transport};
    ///
    /// let transport: std::sync::Arc<dyn Transport> = MemoryTransport::new();
    /// assert!(transport.as_ref().as_any().is::<MemoryTransport>());
    /// ```
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}
