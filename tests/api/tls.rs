//! TLS and mutual TLS on the listener, with certificates made inside the test.

use std::path::Path;
use std::time::Duration;

use accord::app::Application;
use accord::config::{Config, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{Accord, Backend, TestDb, health_of};

/// The bootstrap key the TLS servers run with.
const PLATFORM_KEY: &str = "acc_platform_tls_test_key_0123456789abcdef";

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

/// A CA, a server certificate for localhost and a client certificate.
fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: leaf(vec!["localhost".into()]),
        client: leaf(vec!["accord-client".into()]),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Serves with TLS (and mTLS when `mutual`); returns the port and a stop switch.
async fn serve(
    pki: &Pki,
    mutual: bool,
) -> (
    u16,
    tokio::sync::oneshot::Sender<()>,
    TestDb,
    tempfile::TempDir,
) {
    let (db, url) = TestDb::create(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles {
        cert: write(dir.path(), "server.pem", &pki.server.0),
        key: write(dir.path(), "server.key", &pki.server.1),
        client_ca: mutual.then(|| write(dir.path(), "ca.pem", &pki.ca_pem)),
    };
    let config = Config {
        database_url: url,
        tls: Some(tls),
        bootstrap_key: Some(accord::domain::api_key::Secret::new(PLATFORM_KEY.into())),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(config, listener).await.unwrap();
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve_until(async {
        let _ = stopped.await;
    }));
    (port, stop, db, dir)
}

async fn connect(
    port: u16,
    tls: Option<ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://localhost:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    endpoint.connect().await
}

fn trusting(pki: &Pki) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost")
}

async fn serving(channel: Result<Channel, tonic::transport::Error>) -> bool {
    match channel {
        Ok(channel) => matches!(health_of(channel, "").await, Ok(ServingStatus::Serving)),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_serves_clients_that_trust_its_ca() {
    let pki = pki();
    let (port, _stop, _db, _dir) = serve(&pki, false).await;
    assert!(serving(connect(port, Some(trusting(&pki))).await).await);
    assert!(
        !serving(connect(port, None).await).await,
        "plaintext is refused"
    );
    let stranger = pki_of_another_ca();
    assert!(
        !serving(connect(port, Some(trusting(&stranger))).await).await,
        "a client that does not trust the server's CA gives up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_trusts_a_tls_server_through_its_ca_file() {
    let pki = pki();
    let (port, _stop, _db, dir) = serve(&pki, false).await;
    let ca = write(dir.path(), "client-ca.pem", &pki.ca_pem);
    let server = format!("https://localhost:{port}");
    let get = |ca: Option<std::path::PathBuf>| {
        let dir = dir.path().to_path_buf();
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            let home = dir.display().to_string();
            let mut args = vec!["get", "tenants", "--server", &server];
            let ca = ca.map(|c| c.display().to_string());
            if let Some(ca) = &ca {
                args.extend(["--ca-file", ca]);
            }
            let env = [
                ("ACCORD_API_KEY", PLATFORM_KEY),
                ("HOME", home.as_str()),
                ("XDG_CONFIG_HOME", home.as_str()),
            ];
            Accord::start(&dir, &args, &env).wait()
        })
    };

    let trusted = get(Some(ca)).await.unwrap();
    assert!(trusted.status.success(), "{}", trusted.output);
    assert!(trusted.output.starts_with("NAME"), "{}", trusted.output);

    let untrusted = get(None).await.unwrap();
    assert_eq!(untrusted.status.code(), Some(3), "{}", untrusted.output);
    assert!(
        untrusted
            .output
            .contains(&format!("cannot reach the server at {server}")),
        "{}",
        untrusted.output
    );
}

fn pki_of_another_ca() -> Pki {
    pki()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_certificate() {
    let pki = pki();
    let (port, _stop, _db, _dir) = serve(&pki, true).await;
    assert!(
        !serving(connect(port, Some(trusting(&pki))).await).await,
        "no client certificate: refused"
    );
    let with_cert = trusting(&pki).identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    assert!(serving(connect(port, Some(with_cert)).await).await);
    let other = pki_of_another_ca();
    let foreign = trusting(&pki).identity(Identity::from_pem(&other.client.0, &other.client.1));
    assert!(
        !serving(connect(port, Some(foreign)).await).await,
        "a certificate from another CA: refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_tls_files_stop_start_up_with_a_clear_error() {
    let (_db, url) = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = Config {
        database_url: url,
        tls: Some(TlsFiles {
            cert: "/nonexistent/server.pem".into(),
            key: "/nonexistent/server.key".into(),
            client_ca: None,
        }),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = Application::build(config, listener)
        .await
        .err()
        .expect("start-up fails");
    assert!(
        format!("{err:#}").contains("/nonexistent/server.pem"),
        "{err:#}"
    );
}
