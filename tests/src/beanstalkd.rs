//! A beanstalkd server for one test: started on a free loopback port, killed on drop.
//!
//! The binary is `beanstalkd` from `PATH` (or `$BEANSTALKD`). When it is missing, starting
//! a server panics with how to install it: a test never skips silently.

use crate::server::{self, free_port, spawn_listening};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A running beanstalkd.
#[derive(Debug)]
pub struct Beanstalkd {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

fn binary() -> PathBuf {
    std::env::var_os("BEANSTALKD").map_or_else(|| PathBuf::from("beanstalkd"), PathBuf::from)
}

impl Beanstalkd {
    /// A server with default options.
    pub fn start() -> Beanstalkd {
        Beanstalkd::start_with(&[])
    }

    /// A server with extra options, e.g. `["-z", "1000"]`.
    pub fn start_with(args: &[&str]) -> Beanstalkd {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        // Another test may take the port between our probe and the server's bind: retry.
        let mut last = String::new();
        for _ in 0..10 {
            let mut server = Beanstalkd {
                child: None,
                port: free_port(),
                args: args.clone(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last = error,
            }
        }
        panic!("beanstalkd did not start: {last}");
    }

    /// A server keeping a binlog in `dir` (`-b DIR`), so that it can be killed and
    /// restarted without losing jobs.
    pub fn with_binlog(dir: &Path) -> Beanstalkd {
        Beanstalkd::start_with(&["-b", dir.to_str().expect("UTF-8 temp dir")])
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(binary());
        command
            .args(["-l", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&self.args);
        let install = "install it with `apt-get install beanstalkd` (Debian/Ubuntu), \
                       `brew install beanstalkd` (macOS), or set BEANSTALKD to the binary";
        let patience = Duration::from_secs(10);
        self.child = Some(spawn_listening(command, self.port, patience, install)?);
        Ok(())
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `beanstalk://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("beanstalk://127.0.0.1:{}", self.port)
    }

    /// Puts the server in drain mode (SIGUSR1): from then on it refuses every `put` with
    /// `DRAINING`.
    pub fn drain(&self) {
        self.signal("USR1");
    }

    /// Stops the server with SIGSTOP: it still accepts connections (the kernel does) but
    /// answers nothing until [`resume`](Beanstalkd::resume).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill(&mut self) {
        server::kill(&mut self.child);
    }

    /// Starts the server again on the same port with the same options (after
    /// [`kill`](Beanstalkd::kill)).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        server::restart("beanstalkd", port, || self.spawn());
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        self.kill();
    }
}
