//! The `mq` command on PostgreSQL, a fresh database per test: the same scenarios as on
//! beanstalkd and SQLite, and `mq migrate`.

mod cli_support;

use mq_tests::postgres::FreshDb;
use sqlx::Executor;

fn fresh() -> FreshDb {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(FreshDb::create())
}

macro_rules! scenarios {
    ($($scenario:ident)*) => {
        $(
            #[test]
            fn $scenario() {
                let db = fresh();
                cli_support::$scenario(&db.url(""));
            }
        )*
    };
}

scenarios!(
    failed_list_bounds_bodies publish_stats_peek publish_options_and_bad_json
    failed_list_show_retry_remove failed_retry_remove_all flush_needs_force stats_watch
);

/// `mq migrate --print` connects to nothing; its script, applied by hand (as a DBA would
/// with `psql`), makes a schema that mq then uses as it is; `mq migrate` applies the same.
#[test]
fn migrate_prints_and_applies() {
    let db = fresh();
    let by_hand = db.url("schema=by_hand");
    let printed = cli_support::mq(&by_hand, &["migrate", "--print"]);
    assert_eq!(printed.code, 0, "{printed:?}");
    assert!(
        printed.stdout.contains("CREATE TABLE mq_messages"),
        "{printed:?}"
    );
    assert!(printed.stdout.contains("\"by_hand\""), "{printed:?}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let mut conn = db.connect().await;
            conn.execute(printed.stdout.as_str())
                .await
                .expect("the script");
        });
    let stats = cli_support::mq(&by_hand, &["stats", "--json"]);
    assert_eq!(stats.code, 0, "{stats:?}");

    let applied = cli_support::mq(&db.url("schema=by_mq"), &["migrate"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(applied.stdout.contains("up to date"), "{applied:?}");
    let elsewhere = cli_support::mq("sqlite://unused.db", &["migrate", "--print"]);
    assert_eq!(elsewhere.code, 2, "{elsewhere:?}");
}
