//! `mq dashboard` as a process of a test: started on `--listen 127.0.0.1:0`, its address
//! read from its first line, killed when the test ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `mq dashboard`.
#[derive(Debug)]
pub struct Dashboard {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its first line (the address, the mode).
    pub banner: String,
}

impl Dashboard {
    /// Starts `binary dashboard --listen 127.0.0.1:0 ARGS` on `url`, with `token` as
    /// `MQ_DASHBOARD_TOKEN` (or none), and waits for its first line.
    pub fn start(binary: &Path, url: &str, token: Option<&str>, args: &[&str]) -> Dashboard {
        let mut command = Command::new(binary);
        command
            .args(["--url", url, "dashboard", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("MQ_DASHBOARD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(token) = token {
            command.env("MQ_DASHBOARD_TOKEN", token);
        }
        let mut child = command.spawn().expect("start mq dashboard");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut banner = String::new();
        BufReader::new(stdout)
            .read_line(&mut banner)
            .expect("read the dashboard's first line");
        let address = banner
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in the dashboard's first line: {banner:?}"))
            .to_owned();
        Dashboard {
            child,
            address,
            banner,
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
