//! `accord get KIND [NAME] -o table|yaml|json`: one resource by its id, or
//! every one of the tenant's (every page of the List call).

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::Failure;
use super::connection::{Connection, ConnectionArgs};
use super::output::{self, Column, Format, enumeration, ids, text};
use super::reflect::to_json;
use crate::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;
use pb::tenant_service_client::TenantServiceClient;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to show.
    pub kind: Kind,
    /// The id of one (or its full resource name); every one when left out.
    pub name: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// How many to ask the server for per List call (it may send fewer);
    /// every page is read either way.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    #[value(alias = "tenant")]
    Tenants,
    #[value(alias = "party")]
    Parties,
    #[value(alias = "service")]
    Services,
    #[value(alias = "agreement")]
    Agreements,
    #[value(alias = "key", alias = "apikeys")]
    Keys,
}

impl Kind {
    /// The collection's segment in resource names.
    fn collection(self) -> &'static str {
        match self {
            Kind::Tenants => "tenants",
            Kind::Parties => "parties",
            Kind::Services => "services",
            Kind::Agreements => "agreements",
            Kind::Keys => "apiKeys",
        }
    }

    fn columns(self) -> &'static [Column] {
        const TENANTS: &[Column] = &[
            ids("NAME", "name"),
            text("DISPLAY NAME", "display_name"),
            text("CREATED", "create_time"),
        ];
        const PARTIES: &[Column] = &[
            ids("NAME", "name"),
            enumeration("KIND", "kind", "PARTY_KIND_"),
            ids("PARENT", "parent"),
            text("DISPLAY NAME", "display_name"),
        ];
        const SERVICES: &[Column] = &[
            ids("NAME", "name"),
            ids("OWNER", "owner"),
            text("DISPLAY NAME", "display_name"),
        ];
        const AGREEMENTS: &[Column] = &[
            ids("NAME", "name"),
            enumeration("KIND", "kind", "AGREEMENT_KIND_"),
            enumeration("STATE", "state", "AGREEMENT_STATE_"),
            ids("PROVIDER", "provider"),
            ids("CONSUMER", "consumer"),
            ids("SERVICES", "services"),
            text("REVISION", "revision_id"),
        ];
        const KEYS: &[Column] = &[
            ids("NAME", "name"),
            enumeration("ROLE", "role", "ROLE_"),
            text("PREFIX", "secret_prefix"),
            text("EXPIRES", "expire_time"),
            text("REVOKED", "revoke_time"),
        ];
        match self {
            Kind::Tenants => TENANTS,
            Kind::Parties => PARTIES,
            Kind::Services => SERVICES,
            Kind::Agreements => AGREEMENTS,
            Kind::Keys => KEYS,
        }
    }
}

/// `id` as a resource name under `parent`, unless it already is one.
pub fn resource_name(parent: &str, collection: &str, id: &str) -> String {
    if id.contains('/') {
        id.to_string()
    } else if parent.is_empty() {
        format!("{collection}/{id}")
    } else {
        format!("{parent}/{collection}/{id}")
    }
}

pub async fn run(args: GetArgs) -> Result<(), Failure> {
    let connection = Connection::open(&args.connection)?;
    let parent = match args.kind {
        Kind::Tenants => String::new(),
        _ => connection.tenant()?,
    };
    let items = match &args.name {
        Some(id) => {
            let name = resource_name(&parent, args.kind.collection(), id);
            vec![get_one(&connection, args.kind, name).await?]
        }
        None => list(&connection, args.kind, parent, args.page_size).await?,
    };
    output::print(
        &items,
        args.name.is_some(),
        args.output,
        args.kind.columns(),
    )
}

async fn get_one(connection: &Connection, kind: Kind, name: String) -> Result<Value, Failure> {
    let doing = format!("get {name}");
    let fail = |s: tonic::Status| connection.failure(&s, &doing);
    let authed = connection.authed();
    Ok(match kind {
        Kind::Tenants => to_json(
            &TenantServiceClient::new(authed)
                .get_tenant(pb::GetTenantRequest { name })
                .await
                .map_err(fail)?
                .into_inner(),
        ),
        Kind::Parties => to_json(
            &PartyServiceClient::new(authed)
                .get_party(pb::GetPartyRequest { name })
                .await
                .map_err(fail)?
                .into_inner(),
        ),
        Kind::Services => to_json(
            &ServiceCatalogServiceClient::new(authed)
                .get_service(pb::GetServiceRequest { name })
                .await
                .map_err(fail)?
                .into_inner(),
        ),
        Kind::Agreements => to_json(
            &AgreementServiceClient::new(authed)
                .get_agreement(pb::GetAgreementRequest { name })
                .await
                .map_err(fail)?
                .into_inner(),
        ),
        Kind::Keys => to_json(
            &ApiKeyServiceClient::new(authed)
                .get_api_key(pb::GetApiKeyRequest { name })
                .await
                .map_err(fail)?
                .into_inner(),
        ),
    })
}

/// Every page of a List call: `$call` makes the request from a page token,
/// `$items` names the response's repeated field.
macro_rules! every_page {
    ($connection:expr, $doing:expr, $client:expr, $method:ident, $request:expr, $items:ident) => {{
        let mut client = $client;
        let mut items = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .$method($request(page_token))
                .await
                .map_err(|s| $connection.failure(&s, $doing))?
                .into_inner();
            items.extend(page.$items.iter().map(to_json));
            if page.next_page_token.is_empty() {
                break items;
            }
            page_token = page.next_page_token;
        }
    }};
}

async fn list(
    connection: &Connection,
    kind: Kind,
    parent: String,
    page_size: i32,
) -> Result<Vec<Value>, Failure> {
    let doing = &match kind {
        Kind::Tenants => "list tenants".to_string(),
        _ => format!("list {parent}/{}", kind.collection()),
    };
    let authed = connection.authed();
    Ok(match kind {
        Kind::Tenants => every_page!(
            connection,
            doing,
            TenantServiceClient::new(authed),
            list_tenants,
            |page_token| pb::ListTenantsRequest {
                page_size,
                page_token
            },
            tenants
        ),
        Kind::Parties => every_page!(
            connection,
            doing,
            PartyServiceClient::new(authed),
            list_parties,
            |page_token| pb::ListPartiesRequest {
                parent: parent.clone(),
                page_size,
                page_token
            },
            parties
        ),
        Kind::Services => every_page!(
            connection,
            doing,
            ServiceCatalogServiceClient::new(authed),
            list_services,
            |page_token| pb::ListServicesRequest {
                parent: parent.clone(),
                page_size,
                page_token
            },
            services
        ),
        Kind::Agreements => every_page!(
            connection,
            doing,
            AgreementServiceClient::new(authed),
            list_agreements,
            |page_token| pb::ListAgreementsRequest {
                parent: parent.clone(),
                page_size,
                page_token,
                filter: String::new(),
            },
            agreements
        ),
        Kind::Keys => every_page!(
            connection,
            doing,
            ApiKeyServiceClient::new(authed),
            list_api_keys,
            |page_token| pb::ListApiKeysRequest {
                parent: parent.clone(),
                page_size,
                page_token
            },
            api_keys
        ),
    })
}
