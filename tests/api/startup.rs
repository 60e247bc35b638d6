use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;

use crate::server::health_of;
use crate::support::*;

/// Starts the real binary and returns it with the address it logged. The caller
/// stops and reaps the child (`stop`), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn start_binary(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_accord"));
    cmd.arg("serve")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("ACCORD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start accord");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if let Some(addr) = line.split("address=").nth(1) {
                let addr = addr.split_whitespace().next().unwrap().to_string();
                return (child, addr, rx);
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    panic!(
        "accord never said where it listens; it logged:\n{}",
        seen.join("\n")
    );
}

async fn wait_serving(addr: &str) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(ServingStatus::Serving) = health_of(channel.clone(), "").await {
            return;
        }
        assert!(Instant::now() < deadline, "{addr} never became SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "accord exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("accord did not stop on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_an_empty_folder_becomes_serving_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port is set, so parallel runs do not collide on 50051.
    let (child, addr, rx) = start_binary(dir.path(), &[("ACCORD_LISTEN", "127.0.0.1:0")]);
    wait_serving(&addr).await;
    stop(child);
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(
        dir.path().join("accord.db").exists(),
        "the SQLite file is in the working directory"
    );
    let _ = logs;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_started_together_on_one_postgres_database_both_serve() {
    let Some((db, url)) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ACCORD_LISTEN", "127.0.0.1:0"),
        ("ACCORD_DATABASE_URL", url.as_str()),
    ];
    let (a, addr_a, _) = start_binary(dir.path(), &env);
    let (b, addr_b, _) = start_binary(dir.path(), &env);
    wait_serving(&addr_a).await;
    wait_serving(&addr_b).await;
    stop(a);
    stop(b);
    drop(db);
}

#[test]
fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args([
            "migrate",
            "--database-url",
            "postgres://accord:hunter2@127.0.0.1:1/accord",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn serve_help_documents_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--database-url",
        "--max-connections",
        "--max-concurrent-requests",
        "--max-message-bytes",
        "--request-timeout-seconds",
        "--shutdown-grace-seconds",
        "--tls-cert-file",
        "--tls-key-file",
        "--tls-client-ca-file",
        "--log",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("ACCORD_DATABASE_URL"));
}
