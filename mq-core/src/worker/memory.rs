//! The worker's own resident memory, for `--memory-limit`.

/// Resident set size in bytes, from `VmRSS` in `/proc/self/status`; `None` where that file
/// does not exist (not Linux).
pub(crate) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `--memory-limit` needs a reading of the worker's memory: where there is none (not
/// Linux), a limit is refused at start-up rather than silently never reached.
pub(crate) fn check_limit(limit: Option<u64>, reading: Option<u64>) -> crate::Result<()> {
    match (limit, reading) {
        (Some(_), None) => Err(crate::Error::Config(
            "--memory-limit (MQ_MEMORY_LIMIT, WorkerBuilder::memory_limit) needs \
             /proc/self/status, which only Linux has: leave the limit out on this platform \
             and bound the worker's memory with the service manager instead"
                .into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_rss() {
        let rss = super::resident_bytes().expect("linux has /proc/self/status");
        assert!(
            rss > 1024 * 1024,
            "a test binary uses more than 1 MiB: {rss}"
        );
    }

    #[test]
    fn a_limit_without_a_reading_is_refused() {
        let error = super::check_limit(Some(1 << 30), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("only Linux"), "{error}");
        assert!(super::check_limit(Some(1 << 30), Some(1 << 20)).is_ok());
        assert!(super::check_limit(None, None).is_ok());
    }
}
