//! What every request of one dashboard shares: the transport, the options, the per-process
//! secrets, the sampled history; and the backend call with its time limit.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::options::Options;
use super::sampler::History;
use crate::transport::{QueueStats, Transport};

/// The state of one [`router`](super::router).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) options: Options,
    /// The anti-forgery token every form carries: random, per process.
    pub(crate) csrf: String,
    /// The session cookie's value for a browser signed in with the token: random, per
    /// process (the token itself never goes into a cookie).
    pub(crate) session: String,
    pub(crate) history: Mutex<History>,
    pub(crate) sampler: OnceLock<()>,
}

pub(crate) type AppState = Arc<Shared>;

/// Why a page could not ask the backend: shown in the banner.
#[derive(Debug, Clone)]
pub(crate) struct Outage(pub(crate) String);

impl Shared {
    pub(crate) fn new(transport: Arc<dyn Transport>, options: Options) -> Shared {
        Shared {
            transport,
            options,
            csrf: random_token(),
            session: random_token(),
            history: Mutex::new(History::default()),
            sampler: OnceLock::new(),
        }
    }

    /// Runs one backend call within the options' time limit; an error or a timeout is an
    /// [`Outage`] with the backend named.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = crate::Result<T>>,
    ) -> Result<T, Outage> {
        let limit = self.options.backend_timeout;
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Outage(format!(
                "{} ({what}): {error}",
                self.transport.describe()
            ))),
            Err(_) => Err(Outage(format!(
                "{} ({what}): no answer within {}",
                self.transport.describe(),
                humantime::format_duration(limit)
            ))),
        }
    }

    /// The counts of every queue.
    pub(crate) async fn stats(&self) -> Result<Vec<QueueStats>, Outage> {
        self.call("stats", self.transport.stats()).await
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        // A panic while holding the lock leaves plain numbers behind: use them.
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Two random UUIDs (244 random bits) as hex: UUID v4 with `fast-rng` draws from `rand`'s
/// thread generator, a CSPRNG seeded by the operating system.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
