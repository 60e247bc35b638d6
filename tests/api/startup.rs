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
    let (accord, channel) = serving(
        dir.path(),
        &[
            ("ACCORD_LISTEN", "127.0.0.1:0"),
            ("ACCORD_BOOTSTRAP_KEY_FILE", key_file.as_str()),
            ("ACCORD_LOG", "debug"),
        ],
    )
    .await;
    let mut tenants =
        accord::proto::v1::tenant_service_client::TenantServiceClient::with_interceptor(
            channel,
            Bearer::new(&key),
        );
    tenants
        .list_tenants(accord::proto::v1::ListTenantsRequest::default())
        .await
        .expect("the key from the file is the PLATFORM_ADMIN key");
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
