//! Where the server is and which key to show it: flags, then the
//! environment (`ACCORD_SERVER`, `ACCORD_API_KEY`, …), then a context of
//! the config file (`$XDG_CONFIG_HOME/accord/config.toml`, by default
//! `~/.config/accord/config.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::Failure;

/// The address used when no flag, variable or context names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// How to reach the server, on every client command.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Server address, http://HOST:PORT or https://HOST:PORT [default: http://127.0.0.1:50051].
    #[arg(long, env = "ACCORD_SERVER", global = true)]
    pub server: Option<String>,
    /// API key (prefer --api-key-file: a flag shows in the process list).
    #[arg(long, env = "ACCORD_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// File holding the API key (surrounding whitespace is ignored).
    #[arg(long, env = "ACCORD_API_KEY_FILE", global = true)]
    pub api_key_file: Option<PathBuf>,
    /// Tenant id the command works in.
    #[arg(long, env = "ACCORD_TENANT", global = true)]
    pub tenant: Option<String>,
    /// PEM file of the CA that signed the server's certificate (https only).
    #[arg(long, env = "ACCORD_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for servers that require one (mutual TLS; with --key-file).
    #[arg(long, env = "ACCORD_CERT_FILE", global = true)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (with --cert-file).
    #[arg(long, env = "ACCORD_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// Context of the config file to use instead of its current-context.
    #[arg(long, env = "ACCORD_CONTEXT", global = true)]
    pub context: Option<String>,
}

/// The config file: named contexts and the one used by default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(rename = "current-context", alias = "current_context")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, Context>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Context {
    server: Option<String>,
    #[serde(rename = "api-key", alias = "api_key")]
    api_key: Option<String>,
    #[serde(rename = "api-key-file", alias = "api_key_file")]
    api_key_file: Option<PathBuf>,
    tenant: Option<String>,
    #[serde(rename = "ca-file", alias = "ca_file")]
    ca_file: Option<PathBuf>,
    #[serde(rename = "cert-file", alias = "cert_file")]
    cert_file: Option<PathBuf>,
    #[serde(rename = "key-file", alias = "key_file")]
    key_file: Option<PathBuf>,
}

/// The client certificate and its key, both files.
struct ClientIdentity {
    cert: PathBuf,
    key: PathBuf,
}

/// Adds `authorization: Bearer KEY` to every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to the server with the key attached to every call.
pub type Authed = InterceptedService<Channel, Bearer>;

/// A connection: the (lazily connected) channel, and what the commands
/// need to name things and explain failures.
pub struct Connection {
    pub server: String,
    tenant: Option<String>,
    /// The client certificate file, when one is presented.
    client_cert: Option<PathBuf>,
    channel: Channel,
    bearer: Bearer,
}

impl Connection {
    /// Settles the settings (flags > environment > config file) and opens
    /// a channel that connects on first use.
    pub fn open(args: &ConnectionArgs) -> Result<Self, Failure> {
        let context = selected_context(args)?;
        let server = args
            .server
            .clone()
            .or(context.server.clone())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let key = match (&args.api_key, &args.api_key_file) {
            (Some(key), _) => key.trim().to_string(),
            (None, Some(file)) => read_key(file)?,
            (None, None) => match (&context.api_key, &context.api_key_file) {
                (Some(key), _) => key.trim().to_string(),
                (None, Some(file)) => read_key(file)?,
                (None, None) => match first_run_key(&server) {
                    Some(file) => read_key(&file)?,
                    None => {
                        return Err(Failure::Usage(
                            "error: no API key: pass --api-key-file or --api-key, set \
                             ACCORD_API_KEY_FILE or ACCORD_API_KEY, or give the context an \
                             api-key-file in the config file"
                                .into(),
                        ));
                    }
                },
            },
        };
        if key.is_empty() {
            return Err(Failure::Usage("error: the API key is empty".into()));
        }
        let bearer = MetadataValue::try_from(format!("Bearer {key}")).map_err(|_| {
            Failure::Usage("error: the API key holds characters a header cannot carry".into())
        })?;
        let ca_file = args.ca_file.clone().or(context.ca_file.clone());
        let tenant = args.tenant.clone().or(context.tenant.clone());
        let identity = client_identity(args, &context)?;
        let channel = channel(&server, ca_file.as_deref(), identity.as_ref())?;
        Ok(Self {
            server,
            tenant,
            client_cert: identity.map(|i| i.cert),
            channel,
            bearer: Bearer(bearer),
        })
    }

    /// The channel with the key, for any generated client.
    pub fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    /// `tenants/{tenant}`, or a usage error naming the three ways to set it.
    pub fn tenant(&self) -> Result<String, Failure> {
        match &self.tenant {
            Some(t) if !t.is_empty() => Ok(format!("tenants/{}", t.trim_start_matches("tenants/"))),
            _ => Err(Failure::Usage(
                "error: no tenant: pass --tenant, set ACCORD_TENANT or give the context a tenant"
                    .into(),
            )),
        }
    }

    /// Turns a failed call into a `Failure` naming this server.
    pub fn failure(&self, status: &tonic::Status, doing: &str) -> Failure {
        match Failure::from_status(status, &self.server, doing) {
            Failure::Unreachable(message) if self.server.starts_with("https://") => {
                Failure::Unreachable(message + &self.client_certificate_hint(status))
            }
            failure => failure,
        }
    }

    /// Why a TLS connection may have failed over the client certificate.
    /// A server that requires one and gets none says so with a
    /// `CertificateRequired` alert, one that refuses it with another alert;
    /// but the alert comes after the client has finished its handshake, so
    /// the call may see only the connection breaking ("connection closed",
    /// "broken pipe"). tonic reports a failure to connect as UNAVAILABLE,
    /// a connection that breaks once made under another code.
    fn client_certificate_hint(&self, status: &tonic::Status) -> String {
        let cause = super::failure::transport_cause(status);
        let alert = cause.starts_with("received fatal alert");
        let broke = status.code() != tonic::Code::Unavailable;
        match &self.client_cert {
            None if cause.contains("CertificateRequired") => {
                format!("\n  the server wants a client certificate: {CLIENT_CERT_WAYS}")
            }
            None if broke => format!(
                "\n  the server closed the connection; if it requires a client certificate \
                 (mutual TLS): {CLIENT_CERT_WAYS}"
            ),
            Some(cert) if alert || broke => format!(
                "\n  the server {} the client certificate {}",
                if alert { "refused" } else { "may not accept" },
                cert.display()
            ),
            _ => String::new(),
        }
    }
}

/// The ways to give a client certificate, for error messages.
const CLIENT_CERT_WAYS: &str = "pass --cert-file and --key-file, set ACCORD_CERT_FILE and \
                                ACCORD_KEY_FILE, or give the context a cert-file and a key-file";

/// With no key configured, against a server on this machine (the default
/// address, or any port of a loopback address): the bootstrap key a server
/// started in this directory generated beside its embedded database
/// (`ACCORD_DATABASE_URL`'s, as the server reads it, or the default
/// `accord.db`), if there is one.
fn first_run_key(server: &str) -> Option<PathBuf> {
    let authority = server.strip_prefix("http://")?.trim_end_matches('/');
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return None;
    }
    let url = std::env::var("ACCORD_DATABASE_URL")
        .unwrap_or_else(|_| crate::config::DEFAULT_DATABASE_URL.into());
    crate::first_run::key_file(&url).filter(|file| file.is_file())
}

fn read_key(file: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(file)
        .map(|k| k.trim().to_string())
        .map_err(|e| {
            Failure::Usage(format!(
                "error: cannot read the API key file {}: {e}",
                file.display()
            ))
        })
}

/// The certificate and key from the flags (or their variables) if either is
/// set there, else from the context: a pair never mixes the two, so a flag
/// cannot meet a key meant for another certificate. One without the other
/// is a usage error.
fn client_identity(
    args: &ConnectionArgs,
    context: &Context,
) -> Result<Option<ClientIdentity>, Failure> {
    let (cert, key, cert_name, key_name) = if args.cert_file.is_some() || args.key_file.is_some() {
        (
            &args.cert_file,
            &args.key_file,
            "--cert-file (ACCORD_CERT_FILE)",
            "--key-file (ACCORD_KEY_FILE)",
        )
    } else {
        (
            &context.cert_file,
            &context.key_file,
            "the context's cert-file",
            "the context's key-file",
        )
    };
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(ClientIdentity {
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Failure::Usage(format!(
            "error: a client certificate needs its key: {cert_name} was given without \
             {key_name}"
        ))),
        (None, Some(_)) => Err(Failure::Usage(format!(
            "error: a client key needs its certificate: {key_name} was given without \
             {cert_name}"
        ))),
    }
}

/// A file the TLS settings name, or a usage error saying which it is.
fn read_tls_file(file: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(file).map_err(|e| {
        Failure::Usage(format!(
            "error: cannot read the {what} {}: {e}",
            file.display()
        ))
    })
}

fn channel(
    server: &str,
    ca_file: Option<&Path>,
    identity: Option<&ClientIdentity>,
) -> Result<Channel, Failure> {
    let bad = |e: &dyn std::fmt::Display| {
        Failure::Usage(format!("error: bad server address {server:?}: {e}"))
    };
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        return Err(bad(&"expected http://HOST:PORT or https://HOST:PORT"));
    }
    let mut endpoint = Endpoint::from_shared(server.to_string())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(10));
    if server.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(file) = ca_file {
            let pem = read_tls_file(file, "CA file")?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        let mut files = ca_file
            .map(|f| f.display().to_string())
            .into_iter()
            .collect::<Vec<_>>();
        if let Some(identity) = identity {
            let cert = read_tls_file(&identity.cert, "client certificate file")?;
            let key = read_tls_file(&identity.key, "client key file")?;
            // Else rustls would say "peer sent no certificates".
            for (file, pem, what, marker) in [
                (
                    &identity.cert,
                    &cert,
                    "client certificate file",
                    "CERTIFICATE-----",
                ),
                (&identity.key, &key, "client key file", "PRIVATE KEY-----"),
            ] {
                if !String::from_utf8_lossy(pem).contains(marker) {
                    return Err(Failure::Usage(format!(
                        "error: the {what} {} holds no PEM \"-----BEGIN …{marker}\" block",
                        file.display()
                    )));
                }
            }
            tls = tls.identity(Identity::from_pem(cert, key));
            files.extend([&identity.cert, &identity.key].map(|f| f.display().to_string()));
        }
        // tonic parses the PEM files only here, and says "transport error"
        // unless asked for the cause.
        endpoint = endpoint.tls_config(tls).map_err(|e| {
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            Failure::Usage(format!(
                "error: cannot use the TLS files ({}): {cause}",
                files.join(", ")
            ))
        })?;
    } else if ca_file.is_some() {
        return Err(Failure::Usage(format!(
            "error: a CA file was given but {server} is not https://"
        )));
    } else if identity.is_some() {
        return Err(Failure::Usage(format!(
            "error: a client certificate was given but {server} is not https://"
        )));
    }
    Ok(endpoint.connect_lazy())
}

/// The config file's path: `$XDG_CONFIG_HOME/accord/config.toml`, else
/// `$HOME/.config/accord/config.toml`.
fn config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("accord").join("config.toml"))
}

/// The context `--context` (or ACCORD_CONTEXT) names, else the file's
/// current-context, else an empty one. A missing file is no error; a
/// broken one, or a named context it lacks, is.
fn selected_context(args: &ConnectionArgs) -> Result<Context, Failure> {
    let Some(path) = config_path() else {
        return Ok(Context::default());
    };
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str::<ConfigFile>(&text)
            .map_err(|e| Failure::Usage(format!("error: config file {}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
        Err(e) => {
            return Err(Failure::Usage(format!(
                "error: cannot read the config file {}: {e}",
                path.display()
            )));
        }
    };
    let Some(name) = args.context.clone().or(file.current_context.clone()) else {
        return Ok(Context::default());
    };
    file.contexts.get(&name).cloned().ok_or_else(|| {
        Failure::Usage(format!(
            "error: the config file {} has no context {name:?}",
            path.display()
        ))
    })
}
