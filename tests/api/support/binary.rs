//! The real `accord` binary as a child process, for what only a process
//! shows: the command line, the environment, start-up and its logs, exit
//! codes, SIGTERM and SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;

use super::server::{Backend, TestDb, health_of};

/// How a run of the binary ended, and everything it wrote to stdout and
/// stderr.
pub struct Ended {
    pub status: ExitStatus,
    pub output: String,
}

/// The real binary, with what it writes collected line by line.
pub struct Accord {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

pub const PATIENCE: Duration = Duration::from_secs(60);

impl Accord {
    /// Runs `accord args` in `dir` with `env` and no other `ACCORD_*` or
    /// `OTEL_*` variable (but the admin server on a free port unless `env`
    /// sets ACCORD_ADMIN_LISTEN, and no drain delay unless it sets
    /// ACCORD_DRAIN_DELAY_SECONDS). Errors print no backtrace unless `env` sets
    /// `RUST_BACKTRACE` (resolving one takes the debug binary half a second).
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_accord"));
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("ACCORD_") || k.starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_BACKTRACE", "0");
        // Tests run side by side: the admin server's fixed default port
        // would be taken by the first of them.
        cmd.env("ACCORD_ADMIN_LISTEN", "127.0.0.1:0");
        // SIGTERM stops at once unless a test is about the drain delay.
        cmd.env("ACCORD_DRAIN_DELAY_SECONDS", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start accord");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        let readers = [stdout, stderr]
            .into_iter()
            .map(|stream| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        lines.lock().unwrap().push(line);
                    }
                })
            })
            .collect();
        Self {
            child,
            lines,
            readers,
        }
    }

    fn line_with(&self, needle: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|l| l.contains(needle)).cloned()
    }

    /// The first line holding `needle`, or `None` once the binary has ended
    /// without writing one.
    pub fn wait_for(&mut self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(line) = self.line_with(needle) {
                return Some(line);
            }
            if self.child.try_wait().unwrap().is_some() {
                self.join_readers();
                return self.line_with(needle);
            }
            assert!(
                Instant::now() < deadline,
                "accord never wrote {needle:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address it listens on, once it does; `None` if it ended first.
    pub fn address(&mut self) -> Option<String> {
        let line = self.wait_for("listening for gRPC")?;
        // `address=ADDR` in text, `"address":"ADDR"` in JSON.
        let (_, rest) = line
            .split_once("address=")
            .or_else(|| line.split_once("\"address\":\""))?;
        Some(rest.split([' ', '"']).next()?.to_string())
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
    }

    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for the binary to end by itself.
    pub fn wait(mut self) -> Ended {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("accord did not end:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_readers();
        Ended {
            status,
            output: self.output(),
        }
    }

    /// Kills the binary with SIGKILL, as a crash or the OOM killer would:
    /// it gets no chance to finish anything. Waits for it to end.
    pub fn kill(mut self) -> Ended {
        self.child.kill().expect("SIGKILL accord");
        self.wait()
    }

    /// Sends SIGTERM and waits for the binary to end.
    pub fn stop(self) -> Ended {
        self.terminate();
        self.wait()
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod, and returns at once.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `INT`…) and returns at once.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

/// A channel to the server at `addr`, once it reports SERVING.
pub async fn channel_to(addr: &str) -> tonic::transport::Channel {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(ServingStatus::Serving) = health_of(channel.clone(), "").await {
            return channel;
        }
        assert!(Instant::now() < deadline, "{addr} never became SERVING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The environment that points the binary at a fresh database on `backend`,
/// and the database, which must outlive the run.
pub async fn database_env(backend: Backend, dir: &Path) -> Option<(TestDb, Vec<(String, String)>)> {
    let (db, url) = TestDb::create(backend).await?;
    let mut env = vec![("ACCORD_LISTEN".to_string(), "127.0.0.1:0".to_string())];
    match db.migration_url() {
        Some(owner) => {
            env.push(("ACCORD_DATABASE_URL".into(), url));
            env.push(("ACCORD_MIGRATION_DATABASE_URL".into(), owner));
        }
        None => env.push((
            "ACCORD_DATABASE_URL".into(),
            format!("sqlite:{}", dir.join("accord.db").display()),
        )),
    }
    Some((db, env))
}
