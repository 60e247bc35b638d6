//! Secrets stay secret: no database password, OTLP credential or bootstrap key
//! reaches anything the real binary writes (text or JSON logs, the error it
//! exits with), whatever characters it holds and wherever the URL carries it;
//! and the bootstrap key works whatever whitespace surrounds it.

use std::time::{Duration, Instant};

use accord::proto::v1 as pb;
use pb::tenant_service_client::TenantServiceClient;

use crate::on_both_backends;
use crate::support::*;

/// Every character reserved in URLs (RFC 3986's delimiters), `%` and space.
const RESERVED: &str = ":/?#[]@!$&'()*+,;=% ";

/// The reserved characters a URL's userinfo can hold unencoded: all but the
/// `/`, `?` and `#` that end it.
const RESERVED_IN_USERINFO: &str = ":[]@!$&'()*+,;=% ";

/// A secret between two random markers: any spelling of it, and any fragment
/// that reaches either end, contains a marker.
struct Password {
    text: String,
    markers: [String; 2],
}

impl Password {
    fn new(middle: &str) -> Self {
        let head = format!("pwa{}", hex::encode(rand::random::<[u8; 4]>()));
        let tail = format!("{}zpw", hex::encode(rand::random::<[u8; 4]>()));
        Self {
            text: format!("{head}{middle}{tail}"),
            markers: [head, tail],
        }
    }

    /// Every byte but letters and digits as `%XX`.
    fn encoded(&self) -> String {
        self.text
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[track_caller]
    fn assert_absent(&self, output: &str, case: &str) {
        let lower = output.to_lowercase();
        for marker in &self.markers {
            assert!(
                !lower.contains(marker),
                "{case}: the secret {:?} (or a piece of it) was written:\n{output}",
                self.text
            );
        }
    }
}

async fn create_tenant(
    channel: tonic::transport::Channel,
    key: &str,
    id: &str,
) -> Result<pb::Tenant, tonic::Status> {
    TenantServiceClient::with_interceptor(channel, Bearer::new(key))
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: id.into(),
            tenant: Some(pb::Tenant {
                display_name: "Acme".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

/// The host and port of the PostgreSQL test server, when there is one.
fn postgres_host() -> Option<String> {
    let url = std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty())?;
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    Some(authority.rsplit('@').next()?.to_string())
}

/// `postgres://USER@HOST/DB` with `:password` after the user.
fn with_password(url: &str, password: &str) -> String {
    url.replacen('@', &format!(":{password}@"), 1)
}

/// The ways a database URL can carry `password`, as (case, database URL,
/// migration URL), for the role `user` at `host`.
fn placements(password: &Password, host: &str, user: &str) -> Vec<(String, String, String)> {
    let (raw, encoded) = (&password.text, password.encoded());
    let plain = format!("postgres://{user}@{host}/accord");
    [
        (
            "raw in the userinfo",
            format!("postgres://{user}:{raw}@{host}/accord"),
            None,
        ),
        (
            "percent-encoded in the userinfo",
            format!("postgres://{user}:{encoded}@{host}/accord"),
            None,
        ),
        (
            "raw as ?password=",
            format!("{plain}?sslmode=disable&password={raw}"),
            None,
        ),
        (
            "percent-encoded as ?password=",
            format!("{plain}?password={encoded}&sslmode=disable"),
            None,
        ),
        (
            "percent-encoded as ?PassWord=",
            format!("{plain}?PassWord={encoded}"),
            None,
        ),
        (
            "percent-encoded as ?sslpassword=",
            format!("{plain}?sslpassword={encoded}"),
            None,
        ),
        (
            "raw in the migration URL",
            plain.clone(),
            Some(format!("postgres://{user}:{raw}@{host}/accord")),
        ),
        (
            "percent-encoded in the migration URL",
            plain.clone(),
            Some(format!("postgres://{user}:{encoded}@{host}/accord")),
        ),
    ]
    .into_iter()
    .map(|(case, url, migration)| (case.to_string(), url, migration.unwrap_or_default()))
    .collect()
}

/// Everything an error can say, its backtrace included.
const BACKTRACES: (&str, &str) = ("RUST_BACKTRACE", "1");

/// Starts `accord serve` for each placement of `password` in each log format,
/// all at once, and checks that each fails without writing the password.
fn assert_no_failed_start_writes(password: &Password, host: &str, user: &str, backtraces: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for format in ["text", "json"] {
        for (case, url, migration) in placements(password, host, user) {
            let mut env = vec![
                ("ACCORD_LISTEN", "127.0.0.1:0"),
                ("ACCORD_LOG", "debug"),
                ("ACCORD_LOG_FORMAT", format),
                ("ACCORD_DATABASE_URL", url.as_str()),
            ];
            if backtraces {
                env.push(BACKTRACES);
            }
            if !migration.is_empty() {
                env.push(("ACCORD_MIGRATION_DATABASE_URL", migration.as_str()));
            }
            let run = Accord::start(dir.path(), &["serve"], &env);
            runs.push((format!("{case}, {format} logs: {url} {migration}"), run));
        }
    }
    for (case, run) in runs {
        let ended = run.wait();
        assert!(!ended.status.success(), "{case}: {}", ended.output);
        assert!(
            ended.output.contains("Error: "),
            "{case}: it says why it stopped:\n{}",
            ended.output
        );
        password.assert_absent(&ended.output, &case);
    }
}

#[test]
fn no_password_reaches_the_output_when_postgres_is_unreachable() {
    assert_no_failed_start_writes(&Password::new(RESERVED), "127.0.0.1:1", "accord", true);
}

#[test]
fn no_password_with_any_reserved_character_reaches_the_output_of_a_failed_connection() {
    let Some(host) = postgres_host() else {
        eprintln!("skipped: set {PG_URL_VAR} to run the PostgreSQL suite");
        return;
    };
    // The server refuses the role at once, so each start fails fast.
    let mut passwords = vec![Password::new(RESERVED)];
    passwords.extend(RESERVED.chars().map(|c| Password::new(&format!("{c}{c}"))));
    for password in &passwords {
        assert_no_failed_start_writes(password, &host, "accord_no_such_role", false);
    }
}

#[test]
fn no_password_reaches_the_output_of_a_url_that_fails_to_parse() {
    let dir = tempfile::tempdir().unwrap();
    let password = Password::new(RESERVED);
    let (raw, encoded) = (&password.text, password.encoded());
    let cases = [
        format!("postgres://accord:{encoded}@127.0.0.1:54x32/accord"),
        format!("postgres://accord:{encoded}@[::1/accord"),
        format!("postgres://accord:{encoded}@127.0.0.1/accord?sslmode=bogus"),
        format!("postgres://accord@127.0.0.1/accord?password={encoded}&sslmode=bogus"),
        format!("mysql://accord:{raw}@127.0.0.1/accord"),
        format!("mysql://accord:{encoded}@127.0.0.1/accord"),
        format!("postgres://accord:{raw}"),
    ];
    for url in &cases {
        for command in ["serve", "migrate"] {
            let ended = Accord::start(
                dir.path(),
                &[command, "--database-url", url],
                &[
                    ("ACCORD_LISTEN", "127.0.0.1:0"),
                    ("ACCORD_LOG", "debug"),
                    BACKTRACES,
                ],
            )
            .wait();
            let case = format!("{command} {url}");
            assert!(!ended.status.success(), "{case}: {}", ended.output);
            password.assert_absent(&ended.output, &case);
        }
    }
}

#[test]
fn a_password_that_must_be_percent_encoded_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    for reserved in ["/", "?", "#"] {
        let password = Password::new(reserved);
        let url = format!("postgres://accord:{}@127.0.0.1:1/accord", password.text);
        let ended = Accord::start(dir.path(), &["serve", "--database-url", &url], &[]).wait();
        assert!(!ended.status.success(), "{url}: {}", ended.output);
        assert!(
            ended.output.contains("database_url") && ended.output.contains("%2F"),
            "{url}: the error names the setting and how to encode:\n{}",
            ended.output
        );
        password.assert_absent(&ended.output, &url);
    }
}

#[test]
fn no_password_reaches_the_output_of_a_config_file_that_fails_to_parse() {
    let dir = tempfile::tempdir().unwrap();
    // `\q` is no TOML escape: the parser stops on the line with the password.
    let password = Password::new(r"\q:/?#[]@!$&'()*+,;=% ");
    let file = dir.path().join("accord.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"postgres://accord:{}@db/accord\"\n",
            password.text
        ),
    )
    .unwrap();
    let ended = Accord::start(
        dir.path(),
        &["serve", "--config", file.to_str().unwrap()],
        &[],
    )
    .wait();
    assert!(!ended.status.success(), "{}", ended.output);
    assert!(
        ended.output.contains("accord.toml") && ended.output.contains("line 1"),
        "the error says where the file is wrong:\n{}",
        ended.output
    );
    password.assert_absent(&ended.output, "config file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_output_of_a_server_serving_on_postgres() {
    let Some((db, url)) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let owner = Password::new(RESERVED);
    let server = Password::new(RESERVED_IN_USERINFO);
    let query = Password::new(RESERVED);
    let otlp = Password::new(RESERVED);
    let bootstrap = Password::new(RESERVED);
    let migration_url = with_password(&db.migration_url().unwrap(), &owner.encoded());
    let server_url = format!(
        "{}?sslmode=disable&password={}",
        with_password(&url, &server.text),
        query.encoded()
    );
    let otlp_url = format!("http://collector:{}@127.0.0.1:1", otlp.encoded());
    for format in ["text", "json"] {
        let mut accord = Accord::start(
            dir.path(),
            &["serve"],
            &[
                ("ACCORD_LISTEN", "127.0.0.1:0"),
                ("ACCORD_LOG", "debug"),
                ("ACCORD_LOG_FORMAT", format),
                ("ACCORD_DATABASE_URL", server_url.as_str()),
                ("ACCORD_MIGRATION_DATABASE_URL", migration_url.as_str()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url.as_str()),
                ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
                ("ACCORD_BOOTSTRAP_KEY", bootstrap.text.as_str()),
            ],
        );
        let Some(addr) = accord.address() else {
            panic!("accord did not start:\n{}", accord.stop().output);
        };
        let channel = channel_to(&addr).await;
        let tenant = format!("acme-{format}");
        create_tenant(channel.clone(), &bootstrap.text, &tenant)
            .await
            .expect("the bootstrap key with reserved characters works");
        let refused = create_tenant(channel, &query.text, "other").await;
        assert_code(refused, tonic::Code::Unauthenticated);
        accord
            .wait_for("tcp connect error")
            .expect("metrics were pushed to the collector");
        let ended = accord.stop();
        assert!(ended.status.success(), "{}", ended.output);
        for (secret, what) in [
            (&owner, "owner password"),
            (&server, "server password"),
            (&query, "query password"),
            (&otlp, "OTLP password"),
            (&bootstrap, "bootstrap key"),
        ] {
            secret.assert_absent(&ended.output, &format!("{what}, {format} logs"));
        }
    }
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_feed_that_cannot_reconnect_logs_no_password() {
    let Some((db, url)) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    // Roles belong to the cluster: they are made and dropped through its URL.
    let admin_url = std::env::var(PG_URL_VAR).unwrap();
    let role = format!("accord_secrets_{}", hex::encode(rand::random::<[u8; 4]>()));
    let admin = |sql: String| {
        let admin_url = admin_url.clone();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    };
    admin(format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")).await;
    let dir = tempfile::tempdir().unwrap();
    let password = Password::new(RESERVED);
    let server_url = with_password(&with_role(&url, &role), &password.encoded());
    let migration_url = db.migration_url().unwrap();
    let mut accord = Accord::start(
        dir.path(),
        &["serve"],
        &[
            ("ACCORD_LISTEN", "127.0.0.1:0"),
            ("ACCORD_LOG", "debug"),
            ("ACCORD_DATABASE_URL", server_url.as_str()),
            ("ACCORD_MIGRATION_DATABASE_URL", migration_url.as_str()),
        ],
    );
    let addr = accord.address().expect("accord serves");
    channel_to(&addr).await;
    // Once the change feed listens, lock its role out and cut its connections.
    let listening = format!(
        "SELECT 1 / COUNT(*)::int FROM pg_stat_activity WHERE usename = '{role}' AND query LIKE 'LISTEN%'"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        if sqlx::query(sqlx::AssertSqlSafe(listening.clone()))
            .execute(&mut conn)
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the change feed never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin(format!("ALTER ROLE {role} NOLOGIN")).await;
    admin(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    ))
    .await;
    let warned = accord.wait_for("cannot reconnect to follow changes");
    let ended = accord.stop();
    drop(db);
    admin(format!("DROP ROLE IF EXISTS {role}")).await;
    assert!(warned.is_some(), "{}", ended.output);
    password.assert_absent(&ended.output, "change feed");
}

// --- the bootstrap key, whatever whitespace surrounds it ----------------------

/// Starts the binary with `extra` on `backend` and creates a tenant with
/// `key`.
async fn create_tenant_with(
    backend: Backend,
    extra: &[(&str, &str)],
    key: &str,
) -> Option<Result<pb::Tenant, tonic::Status>> {
    let dir = tempfile::tempdir().unwrap();
    let (db, mut env) = database_env(backend, dir.path()).await?;
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut accord = Accord::start(dir.path(), &["serve"], &env);
    let Some(addr) = accord.address() else {
        panic!("accord did not start:\n{}", accord.stop().output);
    };
    let created = create_tenant(channel_to(&addr).await, key, "acme").await;
    let ended = accord.stop();
    assert!(ended.status.success(), "{}", ended.output);
    drop(db);
    Some(created)
}

async fn a_bootstrap_key_with_a_trailing_newline_in_the_environment_authenticates(
    backend: Backend,
) {
    let key = new_platform_key();
    let padded = format!("{key}\n");
    let created = create_tenant_with(backend, &[("ACCORD_BOOTSTRAP_KEY", &padded)], &key).await;
    if let Some(created) = created {
        created.expect("the trimmed key is the PLATFORM_ADMIN key");
    }
}

async fn a_bootstrap_key_file_with_crlf_or_trailing_spaces_authenticates(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let key = new_platform_key();
    for (i, content) in [format!("{key}\r\n"), format!("  {key} \t \n\n")]
        .iter()
        .enumerate()
    {
        let file = dir.path().join(format!("key-{i}"));
        std::fs::write(&file, content).unwrap();
        let file = file.display().to_string();
        let created =
            create_tenant_with(backend, &[("ACCORD_BOOTSTRAP_KEY_FILE", &file)], &key).await;
        if let Some(created) = created {
            created.unwrap_or_else(|e| panic!("the key in {content:?} is refused: {e:?}"));
        }
    }
}

on_both_backends!(
    backend:
    a_bootstrap_key_with_a_trailing_newline_in_the_environment_authenticates,
    a_bootstrap_key_file_with_crlf_or_trailing_spaces_authenticates,
);

#[test]
fn a_bootstrap_key_of_only_whitespace_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap-key");
    std::fs::write(&file, " \r\n\t\n").unwrap();
    let file = file.display().to_string();
    for (variable, value, named) in [
        ("ACCORD_BOOTSTRAP_KEY", " \n", "ACCORD_BOOTSTRAP_KEY"),
        ("ACCORD_BOOTSTRAP_KEY_FILE", file.as_str(), file.as_str()),
    ] {
        let ended = Accord::start(
            dir.path(),
            &["serve"],
            &[("ACCORD_LISTEN", "127.0.0.1:0"), (variable, value)],
        )
        .wait();
        assert!(!ended.status.success(), "{variable}: {}", ended.output);
        assert!(
            ended.output.contains("only whitespace") && ended.output.contains(named),
            "{variable}: the error says the key is blank and where it came from:\n{}",
            ended.output
        );
    }
}
