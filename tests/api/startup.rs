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
    Vec<String>,
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
                seen.push(line);
                return (child, addr, rx, seen);
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
    let (child, addr, _, first_lines) =
        start_binary(dir.path(), &[("ACCORD_LISTEN", "127.0.0.1:0")]);
    wait_serving(&addr).await;
    stop(child);
    assert!(
        dir.path().join("accord.db").exists(),
        "the SQLite file is in the working directory"
    );
    let first = first_lines.join("\n");
    assert!(
        first.contains("SQLite file"),
        "it says where the data is:\n{first}"
    );
    assert!(
        first.contains("ACCORD_BOOTSTRAP_KEY"),
        "without a bootstrap key it says how to set one:\n{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_is_read_from_a_file_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_platform_key();
    let key_file = dir.path().join("bootstrap-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let key_file = key_file.display().to_string();
    let (child, addr, rx, first_lines) = start_binary(
        dir.path(),
        &[
            ("ACCORD_LISTEN", "127.0.0.1:0"),
            ("ACCORD_BOOTSTRAP_KEY_FILE", key_file.as_str()),
            ("ACCORD_LOG", "debug"),
        ],
    );
    wait_serving(&addr).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut tenants =
        accord::proto::v1::tenant_service_client::TenantServiceClient::with_interceptor(
            channel,
            Bearer::new(&key),
        );
    tenants
        .list_tenants(accord::proto::v1::ListTenantsRequest::default())
        .await
        .expect("the key from the file is the PLATFORM_ADMIN key");
    stop(child);
    let logs: Vec<String> = first_lines.into_iter().chain(rx.try_iter()).collect();
    let logs = logs.join("\n");
    assert!(!logs.contains(&key[4..]), "the key was logged:\n{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_started_together_on_one_postgres_database_both_serve() {
    let Some((db, url)) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let owner_url = db.migration_url().unwrap();
    let env = [
        ("ACCORD_LISTEN", "127.0.0.1:0"),
        ("ACCORD_DATABASE_URL", url.as_str()),
        ("ACCORD_MIGRATION_DATABASE_URL", owner_url.as_str()),
    ];
    let (a, addr_a, _, _) = start_binary(dir.path(), &env);
    let (b, addr_b, _, _) = start_binary(dir.path(), &env);
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
        "--migration-database-url",
        "--max-connections",
        "--max-concurrent-requests",
        "--entitlement-cache-size",
        "--otlp-endpoint",
        "--metric-export-interval-ms",
        "--max-message-bytes",
        "--request-timeout-seconds",
        "--shutdown-grace-seconds",
        "--tls-cert-file",
        "--tls-key-file",
        "--tls-client-ca-file",
        "--bootstrap-key",
        "--bootstrap-key-file",
        "--log",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("ACCORD_DATABASE_URL"));
}
