//! What the server harnesses share: a free loopback port, and a server process started and
//! waited for until it accepts connections.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Kills a server with SIGKILL (no chance to flush anything) and waits for it.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Calls `spawn` until it starts the server again on its old port (the port may linger for
/// a moment after a kill): 50 tries, 100 ms apart, then a panic naming `what` and the port.
pub(crate) fn restart(what: &str, port: u16, mut spawn: impl FnMut() -> Result<(), String>) {
    let mut last = String::new();
    for _ in 0..50 {
        match spawn() {
            Ok(()) => return,
            Err(error) => last = error,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not restart on port {port}: {last}");
}

/// Spawns `command` and waits up to `patience` until `127.0.0.1:port` accepts connections.
/// A missing binary panics with `install` (a test never skips); a server that exits or
/// never listens is an error with what it said, so that the caller can try another port.
pub(crate) fn spawn_listening(
    mut command: Command,
    port: u16,
    patience: Duration,
    install: &str,
) -> Result<Child, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{:?} is not installed ({error}); {install}",
                command.get_program()
            )
        }
        Err(error) => panic!("cannot run {:?}: {error}", command.get_program()),
    };
    let deadline = Instant::now() + patience;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Err(format!("exited with {status}: {stderr}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Keep reading what it says, or a server that logs much (beanstalkd warns on
            // every refused put) blocks on a full pipe.
            if let Some(mut pipe) = child.stderr.take() {
                std::thread::spawn(move || std::io::copy(&mut pipe, &mut std::io::sink()));
            }
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("not accepting connections after {patience:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
