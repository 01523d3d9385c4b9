//! A fresh PostgreSQL database per test, on the server at `127.0.0.1:5432` (trust
//! authentication, user `postgres`; `MQ_TEST_POSTGRES` overrides the server URL without its
//! database), dropped when the test ends, passed or failed.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// The server the tests use, without a database.
pub fn server() -> String {
    std::env::var("MQ_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database made for one test; dropped (`WITH (FORCE)`, closing whatever still uses it)
/// when this guard is.
#[derive(Debug)]
pub struct FreshDb {
    name: String,
}

impl FreshDb {
    /// Creates `mq_t_<pid>_<n>`.
    pub async fn create() -> FreshDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mq_t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = admin().await;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .expect("drop a leftover test database");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        FreshDb { name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mq URL of this database, with `query` (`schema=x`, or empty) appended.
    pub fn url(&self, query: &str) -> String {
        let url = format!("{}/{}", server(), self.name);
        if query.is_empty() {
            url
        } else {
            format!("{url}?{query}")
        }
    }

    /// A plain connection to this database, to look at or change its tables.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url(""))
            .await
            .expect("connect to the test database")
    }
}

async fn admin() -> PgConnection {
    let url = format!("{}/postgres", server());
    PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL tests need a server at {url} (trust auth): {e}"))
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which cannot block on itself: a thread
        // with a runtime of its own.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut admin = admin().await;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}
