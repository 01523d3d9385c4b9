//! nats-server processes for tests: a single JetStream server, or a three-node cluster,
//! on free loopback ports with their own storage folders, killed on drop.
//!
//! The binary is `nats-server` from `PATH` (or `$NATS_SERVER`). When it is missing,
//! starting a server panics with how to install it: a test never skips silently.

use crate::server::{self, free_port, spawn_listening};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER").map_or_else(|| PathBuf::from("nats-server"), PathBuf::from)
}

/// One nats-server process with JetStream.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// A standalone server with JetStream (`-js`) and file storage in a fresh folder.
    pub fn start() -> NatsServer {
        NatsServer::start_with("")
    }

    /// The same, with `config` added to its configuration file (nats-server's syntax:
    /// `authorization { user: a, password: b }`, `tls { cert_file: ..., key_file: ... }`).
    pub fn start_with(config: &str) -> NatsServer {
        let mut last = String::new();
        for _ in 0..10 {
            let store = tempfile::tempdir().expect("temporary folder");
            let port = free_port();
            let file = store.path().join("server.conf");
            let contents = format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n{config}\n",
                store.path().display()
            );
            std::fs::write(&file, contents).expect("write the server's configuration");
            let args = vec!["-c".into(), file.display().to_string()];
            let mut server = NatsServer {
                child: None,
                port,
                args,
                _store: store,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last = error,
            }
        }
        panic!("nats-server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut command = Command::new(binary());
        command.args(&self.args);
        let install = "install it with `apt-get install nats-server` (Debian/Ubuntu; or run \
                       scripts/ensure-nats-server.sh), or set NATS_SERVER to the binary";
        let patience = Duration::from_secs(15);
        self.child = Some(spawn_listening(command, self.port, patience, install)?);
        Ok(())
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL (nothing flushed) and waits for it.
    pub fn kill(&mut self) {
        server::kill(&mut self.child);
    }

    /// Starts it again on the same port, options and storage (after
    /// [`kill`](NatsServer::kill)).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        server::restart("nats-server", port, || self.spawn());
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three JetStream servers routed into one cluster on loopback.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes; kill one with [`NatsServer::kill`].
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts three nodes (`-cluster`, `-routes` to each other) and waits until JetStream
    /// has elected a meta leader, so that replicated streams can be created. A port taken
    /// by another process between our look and the node's bind (tests run in parallel)
    /// starts the whole cluster again on fresh ports, up to 10 times.
    pub fn start() -> NatsCluster {
        let mut last = String::new();
        for _ in 0..10 {
            match NatsCluster::try_start() {
                Ok(cluster) => return cluster,
                Err(error) => last = error,
            }
        }
        panic!("the cluster did not start: {last}");
    }

    fn try_start() -> Result<NatsCluster, String> {
        let name = format!("mq-test-{}", free_port());
        let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_urls: Vec<String> = routes
            .iter()
            .map(|port| format!("nats-route://127.0.0.1:{port}"))
            .collect();
        let mut nodes = Vec::new();
        for n in 0..3 {
            let store = tempfile::tempdir().expect("temporary folder");
            let args = vec![
                "-js".into(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                clients[n].to_string(),
                "-sd".into(),
                store.path().display().to_string(),
                "-n".into(),
                format!("node-{n}"),
                "--cluster_name".into(),
                name.clone(),
                "-cluster".into(),
                format!("nats://127.0.0.1:{}", routes[n]),
                "-routes".into(),
                route_urls.join(","),
            ];
            let mut server = NatsServer {
                child: None,
                port: clients[n],
                args,
                _store: store,
            };
            // The nodes started so far are killed when `nodes` drops.
            server
                .spawn()
                .map_err(|error| format!("cluster node {n} did not start: {error}"))?;
            nodes.push(server);
        }
        Ok(NatsCluster { nodes })
    }

    /// `nats://a,b,c`: every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(NatsServer::address).collect();
        format!("nats://{}", hosts.join(","))
    }
}
