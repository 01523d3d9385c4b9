//! beanstalkd transport (being written; see issue 4).

pub mod proto;

use crate::{Error, Result};

/// A beanstalkd server used as a queue.
#[derive(Debug)]
pub struct BeanstalkTransport {}

impl BeanstalkTransport {
    /// Connects to `beanstalk://HOST[:PORT]`.
    ///
    /// # Errors
    ///
    /// Not implemented yet.
    pub async fn connect_url(url: &str) -> Result<BeanstalkTransport> {
        Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: "the beanstalk backend is not implemented yet".into(),
        })
    }
}

pub(crate) async fn connect(url: &str) -> Result<std::sync::Arc<dyn super::Transport>> {
    BeanstalkTransport::connect_url(url)
        .await
        .map(|_| unreachable!())
}
