//! `docs/getting-started.md` stays true: the Rust files it shows are this example's files,
//! and its commands run for real, in the page's order, on the shop's `web` and `worker`
//! binaries (on an SQLite file in a temporary directory, then on a beanstalkd of the test's
//! own), each one's output compared with what the page shows.
//!
//! A command this test does not know fails it: a new command on the page needs a step here.
//! `cargo new` and the editing of files are not run (they need no example to check).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mq_tests::beanstalkd::Beanstalkd;
use mq_tests::worker_process::WorkerProcess;

const PAGE: &str = "docs/getting-started.md";

/// Where the page's web app listens, and its beanstalkd.
const PAGE_WEB: &str = "127.0.0.1:3000";
const PAGE_BEANSTALKD: &str = "127.0.0.1:11300";

/// Commands of the page that make the crate rather than run it.
const NOT_RUN: &[&str] = &["cargo new shop", "cd shop", "rm src/main.rs"];

/// Every file of the example, each shown on the page.
const FILES: &[&str] = &[
    "src/lib.rs",
    "src/mail.rs",
    "src/stats.rs",
    "src/web.rs",
    "src/bin/web.rs",
    "src/bin/worker.rs",
];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn page() -> String {
    std::fs::read_to_string(root().join(PAGE)).expect("read the page")
}

/// The fenced blocks of `text`: (info string, the paragraph before the fence, contents).
fn blocks(text: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut lines = text.lines();
    let mut before = String::new();
    let mut after_blank = true;
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            if line.trim().is_empty() {
                after_blank = true;
            } else {
                if after_blank {
                    before.clear();
                }
                before.push_str(line);
                before.push('\n');
                after_blank = false;
            }
            continue;
        };
        let mut contents = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            contents.push_str(line);
            contents.push('\n');
        }
        found.push((info.to_owned(), std::mem::take(&mut before), contents));
        after_blank = true;
    }
    found
}

#[test]
fn the_page_shows_the_examples_files() {
    let mut shown = Vec::new();
    for (info, before, code) in blocks(&page()) {
        let named = FILES
            .iter()
            .find(|file| before.contains(&format!("`{file}`")));
        // `rust ignore`: the page is also a rustdoc page (`mq::guide`), where its files
        // cannot compile alone.
        let language = info.split([' ', ',']).next();
        let (Some(file), Some("rust")) = (named, language) else {
            continue;
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let actual = std::fs::read_to_string(&path).expect("read the example's file");
        let differs = code.lines().zip(actual.lines()).position(|(a, b)| a != b);
        let line = differs.unwrap_or(code.lines().count().min(actual.lines().count()));
        assert!(
            code == actual,
            "{PAGE} shows another {file} than examples/shop, from its line {}",
            line + 1
        );
        shown.push(*file);
    }
    for file in FILES {
        assert!(shown.contains(file), "{PAGE} does not show `{file}`");
    }
}

/// A command of the page and the lines it printed (stdout and stderr, as in a terminal).
#[derive(Debug)]
struct Step {
    command: String,
    output: Vec<String>,
}

/// The `$ ` commands of the page's `sh` blocks, in order.
fn steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (info, _, contents) in blocks(text) {
        if info != "sh" {
            continue;
        }
        let mut in_step = false;
        for line in contents.lines() {
            if let Some(command) = line.strip_prefix("$ ") {
                steps.push(Step {
                    command: command.to_owned(),
                    output: Vec::new(),
                });
                in_step = true;
            } else if let (true, Some(step)) = (in_step, steps.last_mut()) {
                step.output.push(line.to_owned());
            }
        }
    }
    steps
}

/// The lines a program printed itself: not cargo's (indented), not the log's (on stderr,
/// from a timestamp), with a terminal's `^C` taken off; message ids as `<id>`.
fn program_lines(lines: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = lines
        .iter()
        .map(|line| line.strip_prefix("^C").unwrap_or(line))
        .filter(|line| !line.is_empty() && !line.starts_with(' ') && !is_log(line))
        .map(without_ids)
        .collect();
    kept.sort();
    kept
}

/// The lines of `output` before the terminal's `^C`.
fn until_stopped(output: &[String]) -> Vec<String> {
    output
        .iter()
        .take_while(|line| !line.starts_with("^C"))
        .cloned()
        .collect()
}

/// `2026-12-04T14:15:48.645115Z  INFO ...`.
fn is_log(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 11
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[..4].iter().all(u8::is_ascii_digit)
}

/// `line` with every UUID (`8-4-4-4-12` hex digits) replaced by `<id>`.
fn without_ids(line: &str) -> String {
    let shape = [8, 4, 4, 4, 12];
    let mut out = String::new();
    let mut rest = line;
    'scan: while !rest.is_empty() {
        let mut at = 0;
        for (i, len) in shape.iter().enumerate() {
            let part = rest.get(at..at + len).unwrap_or("");
            let dash = i + 1 == shape.len() || rest.get(at + len..at + len + 1) == Some("-");
            if part.len() != *len || !part.bytes().all(|b| b.is_ascii_hexdigit()) || !dash {
                let next = rest.chars().next().map_or(1, char::len_utf8);
                out.push_str(&rest[..next]);
                rest = &rest[next..];
                continue 'scan;
            }
            at += len + 1;
        }
        out.push_str("<id>");
        rest = &rest[at - 1..];
    }
    out
}

/// A binary of the shop started by a step, its stdout collected as it comes.
struct Running {
    command: String,
    process: WorkerProcess,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads that collect them: done once the pipes closed.
    readers: Vec<std::thread::JoinHandle<()>>,
    expected: Vec<String>,
    /// How many of `expected` the page shows before the `^C` that stops it.
    before_stop: usize,
}

fn collect(
    mut pipe: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(read @ 1..) = pipe.read(&mut buffer) {
            let chunk = String::from_utf8_lossy(&buffer[..read]);
            sink.lock().expect("the output").push_str(&chunk);
        }
    });
    (text, reader)
}

/// What a run replaces in what its programs print, to compare it with the page.
struct Run {
    dir: tempfile::TempDir,
    web: String,
    beanstalkd: Option<Beanstalkd>,
    running: BTreeMap<&'static str, Running>,
}

impl Run {
    fn normalized(&self, text: &str) -> Vec<String> {
        let mut text = text.replace(&self.web, PAGE_WEB);
        if let Some(server) = &self.beanstalkd {
            text = text.replace(&server.address(), PAGE_BEANSTALKD);
        }
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        program_lines(&lines)
    }

    /// `MQ_URL=... cargo run --bin NAME [-- ARGS]` as a command of the binary, its `MQ_URL`
    /// pointed at the test's servers.
    fn binary(&self, command: &str) -> Option<(&'static str, Command)> {
        let mut words = command.split_whitespace().peekable();
        let mut env = Vec::new();
        while let Some((name, value)) = words.peek().and_then(|word| word.split_once('=')) {
            let address = self.beanstalkd.as_ref().map(Beanstalkd::address);
            let value = value.replace(PAGE_BEANSTALKD, address.as_deref().unwrap_or(""));
            env.push((name.to_owned(), value));
            words.next();
        }
        let words: Vec<&str> = words.collect();
        let (name, binary) = match words.get(..3)? {
            ["cargo", "run", "--bin"] => match words.get(3) {
                Some(&"web") => ("web", env!("CARGO_BIN_EXE_web")),
                Some(&"worker") => ("worker", env!("CARGO_BIN_EXE_worker")),
                _ => return None,
            },
            _ => return None,
        };
        let args = match words.get(4..) {
            Some(["--", args @ ..]) => args,
            Some([]) | None => &[],
            Some(_) => return None,
        };
        let mut process = Command::new(binary);
        process
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MQ_URL")
            .env_remove("RUST_LOG")
            .env("SHOP_ADDR", &self.web)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Some((name, process))
    }

    fn step(&mut self, step: &Step) {
        let command = step.command.as_str();
        if NOT_RUN.contains(&command) {
            return;
        }
        if command == format!("beanstalkd -l 127.0.0.1 -p {}", port(PAGE_BEANSTALKD)) {
            self.stop_all();
            self.beanstalkd = Some(Beanstalkd::start());
            return;
        }
        if command.starts_with("curl ") {
            return self.curl(step);
        }
        let Some((name, mut process)) = self.binary(command) else {
            panic!("{PAGE} runs `{command}`, which this test does not know");
        };
        if command.contains(" -- ") {
            // Runs to its end, e.g. `--list`.
            let output = process.output().expect("run the binary");
            assert!(output.status.success(), "`{command}`: {output:?}");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert_eq!(
                self.normalized(&stdout),
                program_lines(&step.output),
                "`{command}` prints other lines than {PAGE} shows"
            );
            return;
        }
        if self.running.contains_key(name) {
            self.stop_all();
        }
        let mut child = process.spawn().expect("start the binary");
        let (stdout, out_reader) = collect(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("piped stderr"));
        self.running.insert(
            name,
            Running {
                command: command.to_owned(),
                process: WorkerProcess(child),
                stdout,
                stderr,
                readers: vec![out_reader, err_reader],
                expected: program_lines(&step.output),
                before_stop: program_lines(&until_stopped(&step.output)).len(),
            },
        );
        if name == "web" {
            self.wait_for_web();
        }
    }

    fn wait_for_web(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&self.web).is_err() {
            if let Some(web) = self.running.get_mut("web") {
                let exited = web.process.0.try_wait().expect("wait");
                let stderr = web.stderr.lock().expect("stderr").clone();
                assert!(exited.is_none(), "web exited ({exited:?}): {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "web does not listen on {}",
                self.web
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `curl [-H 'HEADER'] [-d 'BODY'] http://127.0.0.1:3000/PATH` as a plain HTTP request.
    fn curl(&self, step: &Step) {
        let command = &step.command;
        let quoted = |flag: &str| {
            let (_, rest) = command.split_once(&format!("{flag} '"))?;
            rest.split_once('\'').map(|(value, _)| value.to_owned())
        };
        let url = command.split_whitespace().last().unwrap_or_default();
        let Some(path) = url.strip_prefix(&format!("http://{PAGE_WEB}")) else {
            panic!("`{command}` asks another address than {PAGE_WEB}");
        };
        let request = match quoted("-d") {
            Some(body) => format!(
                "POST {path} HTTP/1.1\r\nhost: {}\r\n{}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                self.web,
                quoted("-H").unwrap_or_default(),
                body.len()
            ),
            None => format!(
                "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
                self.web
            ),
        };
        let mut stream = TcpStream::connect(&self.web).expect("connect to web");
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 201"),
            "`{command}`: {response}"
        );
        assert_eq!(
            self.normalized(body),
            program_lines(&step.output),
            "`{command}` answers other lines than {PAGE} shows"
        );
    }

    /// Waits until each running binary printed as many lines as the page shows, stops it
    /// with SIGTERM, and compares: exit 0, the page's lines.
    fn stop_all(&mut self) {
        for (name, mut running) in std::mem::take(&mut self.running) {
            let deadline = Instant::now() + Duration::from_secs(30);
            let printed = || self.normalized(&running.stdout.lock().expect("stdout"));
            while printed().len() < running.before_stop && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            running.process.signal("TERM");
            let status = running.process.wait_for(Duration::from_secs(30));
            // What it printed last may still be on its way from the pipe to the collector.
            let drained = Instant::now() + Duration::from_secs(5);
            while !running.readers.iter().all(|reader| reader.is_finished())
                && Instant::now() < drained
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let stderr = running.stderr.lock().expect("stderr").clone();
            assert_eq!(
                status.and_then(|status| status.code()),
                Some(0),
                "{name} (`{}`) after SIGTERM; its log:\n{stderr}",
                running.command
            );
            assert_eq!(
                printed(),
                running.expected,
                "`{}` prints other lines than {PAGE} shows; its log:\n{stderr}",
                running.command
            );
        }
    }
}

fn port(address: &str) -> &str {
    address.rsplit(':').next().unwrap_or_default()
}

#[test]
fn the_pages_commands_run_as_it_shows() {
    let steps = steps(&page());
    let mut run = Run {
        dir: tempfile::tempdir().expect("a temporary directory"),
        web: format!("127.0.0.1:{}", mq_tests::free_port()),
        beanstalkd: None,
        running: BTreeMap::new(),
    };
    for step in &steps {
        run.step(step);
    }
    run.stop_all();
    let commands: Vec<&str> = steps.iter().map(|step| step.command.as_str()).collect();
    for needed in [
        "cargo run --bin worker",
        "cargo run --bin web",
        "MQ_URL=beanstalk://127.0.0.1:11300 cargo run --bin worker",
        "MQ_URL=beanstalk://127.0.0.1:11300 cargo run --bin web",
    ] {
        assert!(commands.contains(&needed), "{PAGE} does not run `{needed}`");
    }
    assert!(
        run.dir.path().join("mq.db").exists(),
        "the SQLite run left no mq.db where both binaries started"
    );
}

#[test]
fn ids_are_hidden() {
    assert_eq!(
        without_ids("message 01a24169-671b-7365-9c2e-41c78ec07e1b, attempt 1"),
        "message <id>, attempt 1"
    );
    assert_eq!(without_ids("order 1001 — ok"), "order 1001 — ok");
}
