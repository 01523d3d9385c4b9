//! Bad input and faults of the SQLite transport: each a clear `Error::Sqlite` (or
//! `Error::InvalidUrl`) naming the file, never a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mq::transport::sqlite::{SqliteOptions, SqliteTransport};
use mq::transport::{PutOptions, Transport};
use mq::Error;

/// The error's path and detail, after checking it names `path` in its text too.
fn sqlite_error(error: Error, path: &Path) -> String {
    let text = error.to_string();
    match error {
        Error::Sqlite {
            path: named,
            detail,
            ..
        } => {
            assert_eq!(named.file_name(), path.file_name(), "{text}");
            assert!(
                text.contains(&path.file_name().unwrap().to_string_lossy().into_owned()),
                "{text}"
            );
            detail
        }
        other => panic!("expected Error::Sqlite, got {other:?}"),
    }
}

#[tokio::test]
async fn a_path_in_a_folder_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-folder").join("mq.db");
    let error = mq::transport::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap_err();
    let text = error.to_string();
    let detail = sqlite_error(error, &path);
    assert!(detail.contains("does not exist"), "{detail}");
    assert!(text.contains("no-such-folder"), "{text}");
    assert!(!path.parent().unwrap().exists(), "nothing was created");

    let error = SqliteTransport::open("relative/missing/mq.db")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test]
async fn a_read_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    drop(SqliteTransport::open(&path).await.unwrap());
    tokio::time::sleep(Duration::from_millis(50)).await; // let the writer thread close it
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let error = SqliteTransport::open(&path).await.unwrap_err();
    eprintln!("{error}");
    let detail = sqlite_error(error, &path);
    assert!(detail.contains("read-only"), "{detail}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a queue\n".repeat(200)).unwrap();
    let error = SqliteTransport::open(&path).await.unwrap_err();
    eprintln!("{error}");
    let detail = sqlite_error(error, &path);
    assert!(detail.contains("not an SQLite database"), "{detail}");
    let untouched = std::fs::read_to_string(&path).unwrap();
    assert!(untouched.starts_with("these are my notes"));
}

#[tokio::test]
async fn a_folder_and_an_empty_path() {
    let dir = tempfile::tempdir().unwrap();
    let error = SqliteTransport::open(dir.path()).await.unwrap_err();
    assert!(
        matches!(&error, Error::Sqlite { detail, .. } if detail.contains("folder")),
        "{error}"
    );
    let error = mq::transport::connect("sqlite://").await.unwrap_err();
    assert!(matches!(&error, Error::InvalidUrl { .. }), "{error}");
}

#[tokio::test]
async fn a_full_disk_refuses_puts_clearly_and_the_queue_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mq.db");
    let options = SqliteOptions::default().max_size(128 * 1024);
    let queue = SqliteTransport::open_with(&path, options).await.unwrap();
    let body = "x".repeat(2_000);
    let mut stored = 0;
    let error = loop {
        match queue
            .put("q", body.clone().into(), PutOptions::default())
            .await
        {
            Ok(_) => stored += 1,
            Err(error) => break error,
        }
        assert!(stored < 1_000, "the size limit was never reached");
    };
    assert!(stored > 10, "only {stored} fitted");
    eprintln!("{error}");
    let detail = sqlite_error(error, &path);
    assert!(detail.contains("disk full"), "{detail}");

    // Concurrent puts are one transaction: they fail together, then one by one.
    let puts = (0..20).map(|_| queue.put("q", body.clone().into(), PutOptions::default()));
    for result in futures_join_all(puts).await {
        assert!(
            matches!(&result, Err(Error::Sqlite { detail, .. }) if detail.contains("disk full")),
            "{result:?}"
        );
    }

    // Reserving and acking still work, and make room again.
    let jobs = queue
        .reserve(&["q".into()], 20, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 20);
    for job in &jobs {
        queue.ack(job).await.unwrap();
    }
    queue
        .put("q", body.clone().into(), PutOptions::default())
        .await
        .unwrap();
    let stats = queue.stats().await.unwrap();
    assert!(stats[0].ready >= u64::try_from(stored - 20).unwrap());
}

/// `join_all` without a futures dependency: runs the futures concurrently on this task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|value| value.unwrap()).collect()
}
