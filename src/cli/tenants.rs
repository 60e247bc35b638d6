//! `accord tenants create|list|delete` (a PLATFORM_ADMIN key). Deleting asks
//! first on a terminal; without one it wants `--yes`.

use clap::{Args, Subcommand};

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::get::{self, GetArgs, Kind, resource_name};
use super::output::{self, Format};
use crate::proto::v1 as pb;
use pb::tenant_service_client::TenantServiceClient;

#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(subcommand)]
    pub action: TenantsAction,
}

#[derive(Debug, Subcommand)]
pub enum TenantsAction {
    /// Create a tenant.
    Create(CreateArgs),
    /// List every tenant (as `accord get tenants`).
    List(ListArgs),
    /// Delete a tenant; asks first unless --yes.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The tenant's id, lowercase `[a-z][a-z0-9-]{0,62}`.
    pub id: String,
    /// A name for people.
    #[arg(long)]
    pub display_name: Option<String>,
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
pub struct DeleteArgs {
    /// The tenant (its id or resource name).
    pub id: String,
    /// Delete it with everything it holds (else a tenant holding parties,
    /// services or agreements is refused).
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(args: TenantsArgs) -> Result<(), Failure> {
    match args.action {
        TenantsAction::Create(args) => create(args).await,
        TenantsAction::List(args) => {
            get::run(GetArgs {
                kind: Kind::Tenants,
                name: None,
                output: args.output,
                page_size: args.page_size,
                connection: args.connection,
            })
            .await
        }
        TenantsAction::Delete(args) => delete(args).await,
    }
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let doing = format!("create tenant {}", args.id);
    let tenant = TenantServiceClient::new(connection.authed())
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: args.id,
            tenant: Some(pb::Tenant {
                display_name: args.display_name.unwrap_or_default(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?
        .into_inner();
    println!("tenant {} created", tenant.name);
    Ok(())
}

async fn delete(args: DeleteArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let name = resource_name("", "tenants", &args.id);
    if !args.yes {
        confirm(&name, args.force)?;
    }
    let doing = format!("delete {name}");
    TenantServiceClient::new(connection.authed())
        .delete_tenant(pb::DeleteTenantRequest {
            name: name.clone(),
            etag: String::new(),
            force: args.force,
        })
        .await
        .map_err(|s| connection.failure(&s, &doing))?;
    println!("tenant {name} deleted");
    Ok(())
}

/// Asks on the terminal; without one (a script, a pipe) refuses: deleting
/// a tenant is not to be done by accident.
fn confirm(name: &str, force: bool) -> Result<(), Failure> {
    let what = if force {
        " and everything it holds"
    } else {
        ""
    };
    match output::ask(&format!("delete {name}{what}?"))? {
        None => Err(Failure::Usage(format!(
            "error: delete {name}: no terminal to confirm on; pass --yes to delete without asking"
        ))),
        Some(true) => Ok(()),
        Some(false) => Err(Failure::Input(format!("error: {name} not deleted"))),
    }
}
