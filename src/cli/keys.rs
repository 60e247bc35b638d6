//! `accord keys create|list|revoke`: the tenant's API keys. `create` writes
//! the secret, and nothing else, to stdout (`accord keys create … > key`);
//! what it says about the key goes to stderr.

use clap::{Args, Subcommand, ValueEnum};
use rand::Rng;

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::get::{self, GetArgs, Kind, resource_name};
use super::output::{self, Format};
use super::resolve::timestamp;
use crate::proto::v1 as pb;
use pb::api_key_service_client::ApiKeyServiceClient;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key; its secret is printed once, alone, to stdout.
    Create(CreateArgs),
    /// List the tenant's keys (as `accord get keys`).
    List(ListArgs),
    /// Revoke a key: it is refused from then on, for good.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The key's id [default: `key-` and eight random hex digits].
    pub id: Option<String>,
    /// What the key may do.
    #[arg(long, value_enum)]
    pub role: Role,
    /// A name for people.
    #[arg(long)]
    pub display_name: Option<String>,
    /// When the key stops working (RFC 3339) [default: never].
    #[arg(long, value_parser = timestamp)]
    pub expire_time: Option<prost_types::Timestamp>,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// How many to ask the server for per call; every page is read either way.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key (its id or resource name).
    pub id: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// The roles a tenant's key may have (PLATFORM_ADMIN only the bootstrap key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    TenantAdmin,
    Editor,
    Reader,
    Reporter,
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::TenantAdmin => pb::Role::TenantAdmin,
            Role::Editor => pb::Role::Editor,
            Role::Reader => pb::Role::Reader,
            Role::Reporter => pb::Role::Reporter,
        }
    }
}

pub async fn run(args: KeysArgs) -> Result<(), Failure> {
    match args.action {
        KeysAction::Create(args) => create(args).await,
        KeysAction::List(args) => {
            get::run(GetArgs {
                kind: Kind::Keys,
                name: None,
                output: args.output,
                page_size: args.page_size,
                connection: args.connection,
            })
            .await
        }
        KeysAction::Revoke(args) => revoke(args).await,
    }
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let parent = connection.tenant()?;
    let id = args
        .id
        .unwrap_or_else(|| format!("key-{:08x}", rand::rng().random::<u32>()));
    let doing = format!("create key {id}");
    let created = ApiKeyServiceClient::new(connection.authed())
        .create_api_key(pb::CreateApiKeyRequest {
            parent,
            api_key_id: id,
            api_key: Some(pb::ApiKey {
                display_name: args.display_name.unwrap_or_default(),
                role: pb::Role::from(args.role).into(),
                expire_time: args.expire_time,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?
        .into_inner();
    let key = created.api_key.unwrap_or_default();
    let expires = match &key.expire_time {
        Some(t) => format!("expires {}", output::instant(Some(t))),
        None => "never expires".into(),
    };
    eprintln!(
        "key {} created: role {}, {expires}; its secret (shown only now) follows on stdout",
        key.name,
        key.role().as_str_name().trim_start_matches("ROLE_"),
    );
    println!("{}", created.secret);
    Ok(())
}

async fn revoke(args: RevokeArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let name = resource_name(&connection.tenant()?, "apiKeys", &args.id);
    let doing = format!("revoke {name}");
    let key = ApiKeyServiceClient::new(connection.authed())
        .revoke_api_key(pb::RevokeApiKeyRequest {
            name,
            etag: String::new(),
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?
        .into_inner();
    println!(
        "key {} revoked at {}",
        key.name,
        output::instant(key.revoke_time.as_ref())
    );
    Ok(())
}
