//! A PostgreSQL server of one test's own, for the faults the shared server cannot have
//! (a restart, a crash): `initdb` into a temporary folder, then `postgres` on a free
//! loopback port (`listen_addresses=127.0.0.1`, its Unix socket inside the folder, trust
//! authentication for user `postgres`), stopped and the folder removed on drop.
//!
//! The binaries are those of the folder `pg_config --bindir` prints (or `$MQ_TEST_PG_BINDIR`;
//! on Debian, the newest `/usr/lib/postgresql/*/bin` when `pg_config` is libpq's). When they
//! are missing, starting a server panics with how to install them: a test never skips.
//! `initdb` and `postgres` refuse to run as root: as root, the folder is given to the OS user
//! `postgres` and both run as that user (setuid in the child, like `runuser -u postgres`, so
//! that the postmaster is this process's own child and can be sent any signal).
//!
//! The server runs with `fsync=off`: a test kills processes, never the machine, and what a
//! killed postmaster wrote is in the kernel's page cache, so crash recovery sees it all.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::fs::PermissionsExt as _;

use crate::server::{self, free_port};
use crate::tls::Certificates;

/// How long a start (crash recovery included) may take before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(30);

/// How a running server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT, `pg_ctl stop -m fast`: sessions are ended (`FATAL: terminating connection
    /// due to administrator command`), a checkpoint is written, the postmaster exits.
    Fast,
    /// SIGQUIT, `pg_ctl stop -m immediate`: every process exits at once, no checkpoint;
    /// the next start runs crash recovery.
    Immediate,
    /// SIGKILL of the postmaster alone: its backends notice it is gone and exit by
    /// themselves (until then the next start waits for their shared memory to be free).
    Kill,
}

/// What a private server asks of its clients beyond trust over plain TCP.
#[derive(Debug, Default, Clone, Copy)]
pub struct Security<'a> {
    /// Password authentication (`scram-sha-256`) for user `postgres`, with this password.
    pub password: Option<&'a str>,
    /// TLS with this server certificate (`ssl=on`); plain connections are still allowed.
    pub tls: Option<&'a Certificates>,
}

/// A private PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    child: Option<Child>,
    port: u16,
    /// `-c name=value` settings beyond the defaults (TLS).
    settings: Vec<String>,
    bindir: PathBuf,
    /// The OS user (uid, gid) the server runs as, when this process is root.
    owner: Option<(u32, u32)>,
    /// Holds `data/` (the cluster), `postgres.log` and the Unix socket.
    dir: tempfile::TempDir,
}

impl PgServer {
    /// `initdb`, then a server on a free port; waits until it accepts connections.
    pub fn start() -> PgServer {
        PgServer::start_secured(Security::default())
    }

    /// The same, asking for a password or offering TLS as `security` says.
    pub fn start_secured(security: Security<'_>) -> PgServer {
        let bindir = bindir();
        let owner = owner();
        let dir = tempfile::Builder::new()
            .prefix("mq-pg-")
            .tempdir()
            .expect("a temporary folder");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the temporary folder to the postgres user");
        }
        let mut server = PgServer {
            child: None,
            port: 0,
            settings: Vec::new(),
            bindir,
            owner,
            dir,
        };
        server.initdb(security.password);
        if let Some(certificates) = security.tls {
            server.offer_tls(certificates);
        }
        // Another test may take the port between our look and the server's bind: retry.
        let mut last = String::new();
        for _ in 0..10 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last = error,
            }
        }
        panic!("postgres did not start: {last}");
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bindir.join(program));
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn initdb(&self, password: Option<&str>) {
        let mut command = self.command("initdb");
        command.arg("-D").arg(self.data());
        match password {
            Some(password) => {
                let file = self.dir.path().join("password");
                std::fs::write(&file, password).expect("write the password file");
                command
                    .args(["-A", "scram-sha-256"])
                    .arg("--pwfile")
                    .arg(file);
            }
            None => {
                command.args(["-A", "trust"]);
            }
        }
        let output = command
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bindir.join("initdb").display()));
        assert!(
            output.status.success(),
            "initdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Copies the server's certificate and key beside the data (the key must belong to the
    /// server's user and be readable by it alone) and turns `ssl` on.
    fn offer_tls(&mut self, certificates: &Certificates) {
        let cert = self.dir.path().join("server.pem");
        let key = self.dir.path().join("server.key");
        std::fs::copy(certificates.server_cert(), &cert).expect("copy the certificate");
        std::fs::copy(certificates.server_key(), &key).expect("copy the key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .expect("make the key private");
        if let Some((uid, gid)) = self.owner {
            for file in [&cert, &key] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid)).expect("give a TLS file");
            }
        }
        self.settings = vec![
            "ssl=on".to_owned(),
            format!("ssl_cert_file={}", cert.display()),
            format!("ssl_key_file={}", key.display()),
        ];
    }

    /// Starts `postgres` on `self.port` and waits until it accepts connections; an error
    /// (with the end of its log) if it exits first or does not get there in time.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open the server log");
        let socket_dir = self.dir.path().display().to_string();
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("unix_socket_directories={socket_dir}")])
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .args(["-c", "shared_buffers=16MB"])
            .args(self.settings.iter().flat_map(|setting| ["-c", setting]))
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log_tail()));
            }
            if self.accepting() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "not accepting connections after {PATIENCE:?}: {}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server accepts connections (`pg_isready`: not while it starts up or
    /// recovers, when a connection is refused with "the database system is starting up").
    fn accepting(&self) -> bool {
        Command::new(self.bindir.join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                "1",
            ])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// The last lines of the server's log, for an error.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`, the cluster's default database.
    pub fn url(&self) -> String {
        self.url_to("postgres")
    }

    /// The URL of `database` on this server, as user `postgres`.
    pub fn url_to(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log so far (every start appends to it).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Whether the postmaster is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server `how` and waits for the postmaster to exit (a server that has not
    /// exited after 30 s is killed).
    pub fn stop(&mut self, how: Stop) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let signal = match how {
            Stop::Fast => "INT",
            Stop::Immediate => "QUIT",
            Stop::Kill => {
                server::kill(&mut self.child);
                return;
            }
        };
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        server::kill(&mut self.child);
    }

    /// Starts the stopped server again on the same port and data folder, and waits until
    /// it accepts connections (after a crash, once recovery is done). The port or the old
    /// backends' shared memory may still be held for a moment: tried again for 5 s.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is running: stop it first");
        let port = self.port;
        server::restart("postgres", port, || self.spawn());
    }

    /// [`stop`](PgServer::stop), then [`start_again`](PgServer::start_again); how long the
    /// server was gone, from the stop until it accepted connections again.
    pub fn restart(&mut self, how: Stop) -> Duration {
        let started = Instant::now();
        self.stop(how);
        self.start_again();
        started.elapsed()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate: nothing is worth a checkpoint, the folder is removed next.
        self.stop(Stop::Immediate);
    }
}

/// The folder of `initdb`, `postgres` and `pg_isready`.
fn bindir() -> PathBuf {
    let install = "the tests that start their own PostgreSQL need its server binaries: \
                   `apt-get install postgresql` (Debian/Ubuntu), `brew install postgresql` \
                   (macOS), or set MQ_TEST_PG_BINDIR to the folder of initdb and postgres";
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("MQ_TEST_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        assert!(
            has_server(&dir),
            "MQ_TEST_PG_BINDIR={} holds no initdb and postgres; {install}",
            dir.display()
        );
        return dir;
    }
    let mut tried = Vec::new();
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(output) if output.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if has_server(&dir) {
                return dir;
            }
            tried.push(format!("`pg_config --bindir` ({})", dir.display()));
        }
        Ok(output) => tried.push(format!("`pg_config --bindir` ({})", output.status)),
        Err(error) => tried.push(format!("`pg_config` ({error})")),
    }
    // Debian's libpq-dev has a pg_config of its own, printing /usr/bin.
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| has_server(dir))
        .collect();
    debian.sort_by_key(|dir| {
        let version = dir.parent().and_then(Path::file_name);
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    if let Some(dir) = debian.pop() {
        return dir;
    }
    tried.push("/usr/lib/postgresql/*/bin".into());
    panic!(
        "no PostgreSQL server binaries found (looked at {}); {install}",
        tried.join(", ")
    );
}

/// The uid and gid of the OS user `postgres` when this process is root (initdb and
/// postgres refuse root); `None` otherwise.
fn owner() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let output = Command::new("id").args(args).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    if id(&["-u"]).expect("run `id -u`") != 0 {
        return None;
    }
    let uid = id(&["-u", "postgres"]);
    let gid = id(&["-g", "postgres"]);
    match uid.zip(gid) {
        Some(owner) => Some(owner),
        None => panic!(
            "the tests run as root, and initdb and postgres refuse root: they need the OS \
             user `postgres` (made by `apt-get install postgresql`, or `useradd postgres`)"
        ),
    }
}
