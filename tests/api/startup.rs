//! Start-up of the real binary: with nothing configured it serves on SQLite
//! in the working directory, it reads the bootstrap key from a file without
//! logging it, replicas starting together migrate once, and `--help` lists
//! every setting.

use std::process::Command;

use tonic::transport::Channel;

use crate::support::*;

/// `accord serve` in `dir` with `env`, once it reports SERVING, and a
/// channel to it.
async fn serving(dir: &std::path::Path, env: &[(&str, &str)]) -> (Accord, Channel) {
    let mut accord = Accord::start(dir, &["serve"], env);
    let Some(addr) = accord.address() else {
        panic!("accord did not start:\n{}", accord.stop().output);
    };
    let channel = channel_to(&addr).await;
    (accord, channel)
}

/// `key` lists the tenants: it is the PLATFORM_ADMIN key.
async fn assert_platform_key(channel: Channel, key: &str, which: &str) {
    accord::proto::v1::tenant_service_client::TenantServiceClient::with_interceptor(
        channel,
        Bearer::new(key),
    )
    .list_tenants(accord::proto::v1::ListTenantsRequest::default())
    .await
    .unwrap_or_else(|e| panic!("{which} is not the PLATFORM_ADMIN key: {e}"));
}

/// Stops the binary with SIGTERM; it must end cleanly.
fn stop(accord: Accord) -> String {
    let ended = accord.stop();
    assert!(
        ended.status.success(),
        "accord exited with {}",
        ended.status
    );
    ended.output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_in_an_empty_folder_becomes_serving_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // Only the port is set, so parallel runs do not collide on 50051.
    let (accord, _) = serving(dir.path(), &[("ACCORD_LISTEN", "127.0.0.1:0")]).await;
    let first = accord.output();
    stop(accord);
    assert!(
        dir.path().join("accord.db").exists(),
        "the SQLite file is in the working directory"
    );
    assert!(
        first.contains("SQLite file"),
        "it says where the data is:\n{first}"
    );
    assert!(
        first.contains("generated a bootstrap key")
            && first.contains(
                &dir.path()
                    .join("accord.db.bootstrap-key")
                    .display()
                    .to_string()
            ),
        "without a bootstrap key it generates one and says where:\n{first}"
    );
}

/// The files of `dir` whose names end in `.bootstrap-key`.
fn key_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bootstrap-key"))
        .collect()
}

/// `accord get tenants` run in `dir` against the server at `addr` with no
/// key given: it must find the one generated there.
fn get_tenants(dir: &std::path::Path, addr: &str, env: &[(&str, &str)]) -> Ended {
    let server = format!("http://{addr}");
    let home = dir.display().to_string();
    let mut all = vec![
        ("ACCORD_SERVER", server.as_str()),
        ("HOME", home.as_str()),
        ("XDG_CONFIG_HOME", home.as_str()),
    ];
    all.extend_from_slice(env);
    Accord::start(dir, &["get", "tenants", "-o", "json"], &all).wait()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_on_sqlite_generates_an_owner_only_key_that_later_starts_and_commands_use() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let env = [("ACCORD_LISTEN", "127.0.0.1:0")];
    let (mut accord, _) = serving(dir.path(), &env).await;
    let addr = accord.address().unwrap();
    let file = dir.path().join("accord.db.bootstrap-key");
    let key = std::fs::read_to_string(&file).expect("the key file beside the database");
    let key = key.trim().to_string();
    assert!(key.starts_with("acc_") && key.len() >= 32, "a key: {key}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only its owner may read it");

    // A command in the same directory finds it; elsewhere it has no key.
    let run = tokio::task::spawn_blocking({
        let (dir, addr) = (dir.path().to_path_buf(), addr.clone());
        move || get_tenants(&dir, &addr, &[])
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{}", run.output);
    let elsewhere = tempfile::tempdir().unwrap();
    let run = tokio::task::spawn_blocking({
        let (dir, addr) = (elsewhere.path().to_path_buf(), addr.clone());
        move || get_tenants(&dir, &addr, &[])
    })
    .await
    .unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", run.output);
    assert!(run.output.contains("no API key"), "{}", run.output);

    let first = stop(accord);
    assert!(!first.contains(&key[4..]), "the key was logged:\n{first}");

    // The next start reads it back: the same key still works.
    let (accord, channel) = serving(dir.path(), &env).await;
    assert_platform_key(channel, &key, "the generated key, after a restart").await;
    let second = stop(accord);
    assert!(
        second.contains("using the bootstrap key generated on first start")
            && !second.contains("generated a bootstrap key"),
        "{second}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);

    // A key file others may read is refused, and the server does not start.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ended = Accord::start(dir.path(), &["serve"], &env).wait();
    assert!(!ended.status.success(), "{}", ended.output);
    assert!(
        ended.output.contains("may be read or written by others")
            && ended.output.contains("chmod 600"),
        "{}",
        ended.output
    );
    assert!(!ended.output.contains(&key[4..]), "{}", ended.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_generates_none() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_platform_key();
    let (accord, _) = serving(
        dir.path(),
        &[
            ("ACCORD_LISTEN", "127.0.0.1:0"),
            ("ACCORD_BOOTSTRAP_KEY", key.as_str()),
        ],
    )
    .await;
    let logs = stop(accord);
    assert!(dir.path().join("accord.db").exists());
    assert_eq!(key_files(dir.path()), Vec::<String>::new());
    assert!(!logs.contains("bootstrap key"), "{logs}");
}

#[test]
fn a_taken_port_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let ended = Accord::start(
        dir.path(),
        &["serve"],
        &[("ACCORD_LISTEN", address.as_str())],
    )
    .wait();
    assert!(!ended.status.success(), "{}", ended.output);
    assert!(
        ended.output.contains(&format!(
            "binding the gRPC listener to {address} (--listen, ACCORD_LISTEN)"
        )),
        "{}",
        ended.output
    );
}

#[test]
fn an_in_memory_sqlite_database_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    for url in ["sqlite::memory:", "sqlite:x.db?mode=memory"] {
        let ended = Accord::start(dir.path(), &["serve", "--database-url", url], &[]).wait();
        assert!(!ended.status.success(), "{url}: {}", ended.output);
        assert!(
            ended
                .output
                .contains("in-memory SQLite database is not supported"),
            "{url}: {}",
            ended.output
        );
    }
    assert_eq!(key_files(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_is_read_from_a_file_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_platform_key();
    let key_file = dir.path().join("bootstrap-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let key_file = key_file.display().to_string();
    let (accord, channel) = serving(
        dir.path(),
        &[
            ("ACCORD_LISTEN", "127.0.0.1:0"),
            ("ACCORD_BOOTSTRAP_KEY_FILE", key_file.as_str()),
            ("ACCORD_LOG", "debug"),
        ],
    )
    .await;
    assert_platform_key(channel, &key, "the key from the file").await;
    let logs = stop(accord);
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
    // Both start before either is waited for, so they migrate at once.
    let mut a = Accord::start(dir.path(), &["serve"], &env);
    let mut b = Accord::start(dir.path(), &["serve"], &env);
    for accord in [&mut a, &mut b] {
        let addr = accord.address().expect("accord serves");
        channel_to(&addr).await;
    }
    let (la, lb) = (stop(a), stop(b));
    assert!(la.contains("no bootstrap key"), "A {la}");
    assert!(lb.contains("no bootstrap key"), "B {lb}");
    let logs = format!("{la}{lb}");
    // PostgreSQL with no key configured: nothing is generated.
    assert_eq!(key_files(dir.path()), Vec::<String>::new());
    assert!(logs.contains("no bootstrap key"), "{logs}");
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
        "--measurement-max-future",
        "--measurement-max-age",
        "--rollup-retention",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    assert!(help.contains("ACCORD_DATABASE_URL"));
    for env in [
        "ACCORD_MEASUREMENT_MAX_FUTURE",
        "ACCORD_MEASUREMENT_MAX_AGE",
        "ACCORD_ROLLUP_RETENTION",
    ] {
        assert!(help.contains(env), "{env} missing from:\n{help}");
    }
}
