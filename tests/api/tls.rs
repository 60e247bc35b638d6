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

/// A TLS server's port, its stop switch, its database and a scratch folder.
type Served = (
    u16,
    tokio::sync::oneshot::Sender<()>,
    TestDb,
    tempfile::TempDir,
);

/// Serves with TLS (and mTLS when `mutual`) on SQLite.
async fn serve(pki: &Pki, mutual: bool) -> Served {
    serve_on(pki, mutual, Backend::Sqlite).await.unwrap()
}

/// Serves with TLS (and mTLS when `mutual`); `None` when the backend's
/// database is not configured.
async fn serve_on(pki: &Pki, mutual: bool, backend: Backend) -> Option<Served> {
    let (db, url) = TestDb::create(backend).await?;
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles {
        cert: write(dir.path(), "server.pem", &pki.server.0),
        key: write(dir.path(), "server.key", &pki.server.1),
        client_ca: mutual.then(|| write(dir.path(), "ca.pem", &pki.ca_pem)),
    };
    let config = Config {
        database_url: url,
        migration_database_url: db.migration_url(),
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
    Some((port, stop, db, dir))
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

/// Runs the binary in `dir` (also its HOME and config folder) with the
/// platform key and `env`, off the async runtime.
async fn accord_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> crate::support::Ended {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let home = dir.display().to_string();
        let mut all = vec![
            ("ACCORD_API_KEY", PLATFORM_KEY),
            ("HOME", home.as_str()),
            ("XDG_CONFIG_HOME", home.as_str()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Accord::start(&dir, &args, &all).wait()
    })
    .await
    .unwrap()
}

fn holds(output: &str, needle: &str) {
    assert!(output.contains(needle), "wanted {needle:?} in:\n{output}");
}

async fn command_line_presents_a_client_certificate(backend: Backend) {
    let pki = pki();
    let Some((port, _stop, _db, dir)) = serve_on(&pki, true, backend).await else {
        return;
    };
    let d = dir.path();
    let ca = write(d, "trusted-ca.pem", &pki.ca_pem);
    let cert = write(d, "client.pem", &pki.client.0);
    let key = write(d, "client.key", &pki.client.1);
    let (ca, cert, key) = (
        ca.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let server = format!("https://localhost:{port}");
    let base = ["--server", server.as_str(), "--ca-file", ca.as_str()];

    // Flags.
    let created = accord_in(
        d,
        &[
            &["tenants", "create", "acme"][..],
            &base,
            &["--cert-file", &cert, "--key-file", &key],
        ]
        .concat(),
        &[],
    )
    .await;
    assert!(created.status.success(), "{}", created.output);
    holds(&created.output, "tenant tenants/acme created");
    let keyed = accord_in(
        d,
        &[
            &[
                "keys", "create", "reader", "--role", "reader", "--tenant", "acme",
            ][..],
            &base,
            &["--cert-file", &cert, "--key-file", &key],
        ]
        .concat(),
        &[],
    )
    .await;
    assert!(keyed.status.success(), "{}", keyed.output);
    let reader = keyed
        .output
        .lines()
        .find(|l| l.starts_with("acc_"))
        .unwrap_or_else(|| panic!("no secret in:\n{}", keyed.output))
        .to_string();

    // The variables.
    let parties = accord_in(
        d,
        &[&["get", "parties", "--tenant", "acme"][..], &base].concat(),
        &[
            ("ACCORD_API_KEY", &reader),
            ("ACCORD_CERT_FILE", &cert),
            ("ACCORD_KEY_FILE", &key),
        ],
    )
    .await;
    assert!(parties.status.success(), "{}", parties.output);

    // A context of the config file.
    std::fs::create_dir_all(d.join("accord")).unwrap();
    std::fs::write(
        d.join("accord").join("config.toml"),
        format!(
            "current-context = \"mtls\"\n[contexts.mtls]\nserver = \"{server}\"\n\
             tenant = \"acme\"\nca-file = \"{ca}\"\ncert-file = \"{cert}\"\n\
             key-file = \"{key}\"\n"
        ),
    )
    .unwrap();
    let from_context = accord_in(d, &["get", "parties"], &[("ACCORD_API_KEY", &reader)]).await;
    assert!(from_context.status.success(), "{}", from_context.output);
    std::fs::remove_file(d.join("accord").join("config.toml")).unwrap();

    // No certificate: the handshake fails, and the error says why.
    let without = accord_in(
        d,
        &[&["get", "parties", "--tenant", "acme"][..], &base].concat(),
        &[],
    )
    .await;
    assert_eq!(without.status.code(), Some(3), "{}", without.output);
    holds(
        &without.output,
        &format!("cannot reach the server at {server}"),
    );
    holds(&without.output, "client certificate");
    holds(&without.output, "--cert-file");

    // A certificate from a CA the server does not trust: refused, and the
    // error names it.
    let other = pki_of_another_ca();
    let foreign_cert = write(d, "foreign.pem", &other.client.0)
        .display()
        .to_string();
    let foreign_key = write(d, "foreign.key", &other.client.1)
        .display()
        .to_string();
    let foreign = accord_in(
        d,
        &[
            &["get", "parties", "--tenant", "acme"][..],
            &base,
            &["--cert-file", &foreign_cert, "--key-file", &foreign_key],
        ]
        .concat(),
        &[("ACCORD_API_KEY", &reader)],
    )
    .await;
    assert_eq!(foreign.status.code(), Some(3), "{}", foreign.output);
    holds(
        &foreign.output,
        &format!("client certificate {foreign_cert}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_presents_a_client_certificate_on_sqlite() {
    command_line_presents_a_client_certificate(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_presents_a_client_certificate_on_postgres() {
    command_line_presents_a_client_certificate(Backend::Postgres).await
}

/// Refused before any connection, so no server is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_settings_that_cannot_work_are_usage_errors() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = write(d, "client.pem", &pki.client.0).display().to_string();
    let key = write(d, "client.key", &pki.client.1).display().to_string();
    let garbage = write(d, "garbage.pem", "not a certificate\n")
        .display()
        .to_string();
    let missing = d.join("missing.key").display().to_string();
    let https = ["get", "tenants", "--server", "https://localhost:1"];
    let refused = |ended: &crate::support::Ended, needle: &str| {
        assert_eq!(ended.status.code(), Some(2), "{}", ended.output);
        holds(&ended.output, needle);
    };

    let cert_only = accord_in(d, &[&https[..], &["--cert-file", &cert]].concat(), &[]).await;
    refused(
        &cert_only,
        "error: a client certificate needs its key: --cert-file (ACCORD_CERT_FILE) was given \
         without --key-file (ACCORD_KEY_FILE)",
    );
    let key_only = accord_in(d, &https, &[("ACCORD_KEY_FILE", &key)]).await;
    refused(
        &key_only,
        "error: a client key needs its certificate: --key-file (ACCORD_KEY_FILE) was given \
         without --cert-file (ACCORD_CERT_FILE)",
    );

    std::fs::create_dir_all(d.join("accord")).unwrap();
    std::fs::write(
        d.join("accord").join("config.toml"),
        format!("current-context = \"half\"\n[contexts.half]\ncert-file = \"{cert}\"\n"),
    )
    .unwrap();
    let context_half = accord_in(d, &https, &[]).await;
    refused(
        &context_half,
        "error: a client certificate needs its key: the context's cert-file was given without \
         the context's key-file",
    );
    std::fs::remove_file(d.join("accord").join("config.toml")).unwrap();

    let unreadable = accord_in(
        d,
        &[&https[..], &["--cert-file", &cert, "--key-file", &missing]].concat(),
        &[],
    )
    .await;
    refused(
        &unreadable,
        &format!("error: cannot read the client key file {missing}: "),
    );

    let not_pem = accord_in(
        d,
        &[&https[..], &["--cert-file", &garbage, "--key-file", &key]].concat(),
        &[],
    )
    .await;
    refused(
        &not_pem,
        &format!(
            "error: the client certificate file {garbage} holds no PEM \"-----BEGIN \
             …CERTIFICATE-----\" block"
        ),
    );
    let cert_as_key = accord_in(
        d,
        &[&https[..], &["--cert-file", &cert, "--key-file", &cert]].concat(),
        &[],
    )
    .await;
    refused(
        &cert_as_key,
        &format!(
            "error: the client key file {cert} holds no PEM \"-----BEGIN …PRIVATE KEY-----\" \
             block"
        ),
    );
    // PEM blocks that do not parse: what tonic says, naming the files.
    let broken = write(
        d,
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n",
    )
    .display()
    .to_string();
    let unparsable = accord_in(
        d,
        &[&https[..], &["--cert-file", &broken, "--key-file", &key]].concat(),
        &[],
    )
    .await;
    refused(
        &unparsable,
        &format!("error: cannot use the TLS files ({broken}, {key}): "),
    );

    let plaintext = accord_in(
        d,
        &[
            "get",
            "tenants",
            "--server",
            "http://localhost:1",
            "--cert-file",
            &cert,
            "--key-file",
            &key,
        ],
        &[],
    )
    .await;
    refused(
        &plaintext,
        "error: a client certificate was given but http://localhost:1 is not https://",
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
