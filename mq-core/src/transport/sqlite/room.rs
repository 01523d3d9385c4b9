//! Room for new messages: a full disk refuses puts, not the rest of the queue.
//!
//! Reservations, acks, retries and failures write to the WAL too, and a checkpoint copies
//! the WAL into the file, which then grows by the pages that are new. If puts could take
//! the last free byte, none of these could run, and the WAL could never be emptied into
//! the file: the queue would stay full for good. So a put is refused while the room left
//! is below a reserve (4 MiB), which the rest of the queue uses; what it acks frees pages in
//! the file, which new messages reuse.
//!
//! The room is counted once per transaction that puts (once a second while there is
//! plenty): the file system's free space (as an unprivileged process may use it), plus the
//! free pages inside the file, minus what the next checkpoint adds to the file and what the
//! WAL may still grow by before SQLite reuses it from its start. With a size limit
//! (`SqliteOptions::max_size`), the pages left under it count too, with a reserve of an
//! eighth of the limit at most.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// What puts leave free on the file system for reservations, acks and checkpoints.
pub(super) const RESERVE: u64 = 4 << 20;

/// What a row takes beyond its body: columns and index entries, estimated high.
const ROW_BYTES: u64 = 128;

/// SQLite's checkpoint threshold (`wal_autocheckpoint`, which mq leaves at its default):
/// the WAL grows to about this many pages before it is reused from its start.
const WAL_PAGES: u64 = 1000;

/// Room enough that puts may go on from the last count for a while.
const PLENTY: i64 = 64 << 20;

/// How long a count of plenty of room is trusted (less what puts took since): other
/// processes use the disk too.
const RECOUNT: Duration = Duration::from_secs(1);

/// How the room of one file is counted.
#[derive(Debug)]
pub(super) struct Room {
    file: PathBuf,
    wal: PathBuf,
    folder: PathBuf,
    /// The size limit, in bytes, if any.
    limit: Option<u64>,
    /// The last count, and when it was made.
    last: Cell<Option<(Left, Instant)>>,
}

/// Why a put does not fit: the text of the error.
#[derive(Debug)]
pub(super) struct Full(pub(super) String);

/// The room counted at the start of a transaction, less what its puts took since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Left {
    /// Bytes that new rows may still take, beyond the reserve; negative when below it.
    bytes: i64,
    /// What the first count found, for the error text.
    found: Found,
}

#[derive(Debug, Clone, Copy)]
enum Found {
    /// Free bytes on the file system (with free pages in the file), and the reserve.
    Disk { free: u64, reserve: u64 },
    /// Bytes left under the size limit, the limit and the reserve under it.
    Limit { free: u64, limit: u64, reserve: u64 },
    /// The file system does not say how much is free: SQLite's own error decides.
    Unknown,
}

impl Room {
    pub(super) fn new(file: &Path, limit: Option<u64>) -> Room {
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        Room {
            file: file.to_owned(),
            wal: PathBuf::from(wal),
            folder: file.parent().unwrap_or(Path::new("/")).to_owned(),
            limit,
            last: Cell::new(None),
        }
    }

    /// The queue file.
    pub(super) fn file(&self) -> &Path {
        &self.file
    }

    /// The room left, inside the caller's transaction: counted again when the last count is
    /// older than [`RECOUNT`] or found less than [`PLENTY`], else the last count less what
    /// puts took since.
    pub(super) fn left(&self, conn: &Connection) -> rusqlite::Result<Left> {
        if let Some((left, at)) = self.last.get() {
            if at.elapsed() < RECOUNT && left.bytes >= PLENTY {
                return Ok(left);
            }
        }
        let left = self.count(conn)?;
        self.last.set(Some((left, Instant::now())));
        Ok(left)
    }

    /// Keeps what is left after a put took its room, for [`left`](Room::left).
    pub(super) fn keep(&self, left: Left) {
        if let Some((_, at)) = self.last.get() {
            self.last.set(Some((left, at)));
        }
    }

    /// Counts the room now.
    fn count(&self, conn: &Connection) -> rusqlite::Result<Left> {
        let (page, pages, free_pages) = conn
            .prepare_cached(
                "SELECT s.page_size, c.page_count, f.freelist_count \
                 FROM pragma_page_size() s, pragma_page_count() c, pragma_freelist_count() f",
            )?
            .query_row([], |row| {
                let get = |i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                Ok((get(0)?, get(1)?, get(2)?))
            })?;
        let free_pages = free_pages.saturating_mul(page);
        let on_disk = std::fs::metadata(&self.file).map_or(0, |meta| meta.len());
        // Pages the WAL holds beyond the end of the file: the next checkpoint writes them.
        let growth = pages.saturating_mul(page).saturating_sub(on_disk);
        // The WAL grows up to the checkpoint threshold before SQLite reuses it from the
        // start; what it has not taken yet (it is truncated when idle) is not room either.
        let wal_full = WAL_PAGES.saturating_mul(page);
        let wal = std::fs::metadata(&self.wal).map_or(0, |meta| meta.len());
        let growth = growth.saturating_add(wal_full.saturating_sub(wal));
        let disk = match rustix::fs::statvfs(&self.folder) {
            Ok(stat) => {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                let free = free.saturating_add(free_pages).saturating_sub(growth);
                Left::new(
                    free,
                    RESERVE,
                    Found::Disk {
                        free,
                        reserve: RESERVE,
                    },
                )
            }
            Err(_) => Left::unknown(),
        };
        let Some(limit) = self.limit else {
            return Ok(disk);
        };
        let under = limit.saturating_sub(pages.saturating_mul(page));
        let free = under.saturating_add(free_pages);
        let reserve = RESERVE.min(limit / 8);
        let limited = Left::new(
            free,
            reserve,
            Found::Limit {
                free,
                limit,
                reserve,
            },
        );
        Ok(if limited.bytes < disk.bytes {
            limited
        } else {
            disk
        })
    }
}

impl Left {
    fn new(free: u64, reserve: u64, found: Found) -> Left {
        let bytes = i64::try_from(free).unwrap_or(i64::MAX) - i64::try_from(reserve).unwrap_or(0);
        Left { bytes, found }
    }

    fn unknown() -> Left {
        Left {
            bytes: i64::MAX,
            found: Found::Unknown,
        }
    }

    /// Takes the room of a row with a `body` of this many bytes (twice: in the WAL, then in
    /// the file), or says why it does not fit.
    pub(super) fn take(&mut self, body: usize) -> Result<(), Full> {
        let need = (body as u64).saturating_add(ROW_BYTES).saturating_mul(2);
        let need = i64::try_from(need).unwrap_or(i64::MAX);
        if matches!(self.found, Found::Unknown) {
            return Ok(());
        }
        if self.bytes < need {
            return Err(Full(self.refusal(need)));
        }
        self.bytes -= need;
        Ok(())
    }

    fn refusal(&self, need: i64) -> String {
        let why = match self.found {
            Found::Disk { free, reserve } => format!(
                "its file system has {} free for the queue (with the free pages in the file), \
                 {} of which stay free for reservations, acks and checkpoints",
                size(free),
                size(reserve)
            ),
            Found::Limit {
                free,
                limit,
                reserve,
            } => format!(
                "the file has {} left under its size limit of {}, {} of which stay free for \
                 reservations and acks",
                size(free),
                size(limit),
                size(reserve)
            ),
            Found::Unknown => String::new(),
        };
        format!(
            "disk full: the put needs about {} and {why}; new messages are refused \
             until there is room: free space on the disk, raise the size limit \
             (SqliteOptions::max_size) if one is set, or let the workers drain the queue (the \
             room of handled messages is reused); reservations and acks go on",
            size(u64::try_from(need).unwrap_or(0))
        )
    }
}

/// Bytes for error texts: KiB below a MiB, else MiB.
fn size(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_take_room_until_only_the_reserve_is_left() {
        let free = RESERVE + 10_000;
        let mut left = Left::new(
            free,
            RESERVE,
            Found::Disk {
                free,
                reserve: RESERVE,
            },
        );
        left.take(4_000).unwrap();
        let full = left.take(4_000).unwrap_err();
        assert!(full.0.starts_with("disk full"), "{}", full.0);
        assert!(full.0.contains("reservations and acks go on"), "{}", full.0);
    }

    #[test]
    fn the_room_of_a_file_counts_its_free_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mq.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x BLOB); INSERT INTO t SELECT zeroblob(100000) FROM \
             (SELECT 1 UNION SELECT 2 UNION SELECT 3);",
        )
        .unwrap();
        let limit = 4 << 20;
        let room = Room::new(&path, Some(limit));
        let before = room.left(&conn).unwrap().bytes;
        conn.execute_batch("DELETE FROM t").unwrap();
        let after = room.left(&conn).unwrap().bytes;
        assert!(after >= before + 290_000, "{before} -> {after}");
    }

    /// What counting costs, once per transaction that puts: `cargo test --release -p
    /// mq-core --lib sqlite::room -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn cost_of_counting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mq.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let room = Room::new(&path, None);
        let times = 20_000;
        let start = Instant::now();
        for _ in 0..times {
            room.count(&conn).unwrap();
        }
        eprintln!("counting the room: {:?} each", start.elapsed() / times);
        let start = Instant::now();
        for _ in 0..times {
            room.left(&conn).unwrap();
        }
        eprintln!("with plenty of room: {:?} each", start.elapsed() / times);
    }
}
