//! Calling the server as someone: the bearer key every call carries, and a
//! client of each gRPC service that all carry the same key.

use accord::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::breach_service_client::BreachServiceClient;
use pb::compliance_service_client::ComplianceServiceClient;
use pb::entitlement_service_client::EntitlementServiceClient;
use pb::measurement_service_client::MeasurementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;
use pb::tenant_service_client::TenantServiceClient;
use tonic::Status;
use tonic::transport::Channel;

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(key: &str) -> Self {
        Bearer(Some(format!("Bearer {key}").parse().expect("ASCII key")))
    }

    /// No credentials at all.
    pub fn none() -> Self {
        Bearer(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// `channel` with `bearer` on every call.
pub fn authed(channel: &Channel, bearer: Bearer) -> Authed {
    tonic::service::interceptor::InterceptedService::new(channel.clone(), bearer)
}

/// A client of every service, all calling with one key (on one server, or on
/// a replica). Each method returns a fresh client: clone-free to call.
#[derive(Clone)]
pub struct Clients(Authed);

impl Clients {
    pub fn new(channel: &Channel, key: &str) -> Self {
        Clients(authed(channel, Bearer::new(key)))
    }

    pub fn tenants(&self) -> TenantServiceClient<Authed> {
        TenantServiceClient::new(self.0.clone())
    }

    pub fn api_keys(&self) -> ApiKeyServiceClient<Authed> {
        ApiKeyServiceClient::new(self.0.clone())
    }

    pub fn parties(&self) -> PartyServiceClient<Authed> {
        PartyServiceClient::new(self.0.clone())
    }

    pub fn services(&self) -> ServiceCatalogServiceClient<Authed> {
        ServiceCatalogServiceClient::new(self.0.clone())
    }

    pub fn agreements(&self) -> AgreementServiceClient<Authed> {
        AgreementServiceClient::new(self.0.clone())
    }

    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::new(self.0.clone())
    }

    pub fn entitlements(&self) -> EntitlementServiceClient<Authed> {
        EntitlementServiceClient::new(self.0.clone())
    }

    pub fn measurements(&self) -> MeasurementServiceClient<Authed> {
        MeasurementServiceClient::new(self.0.clone())
    }

    pub fn breaches(&self) -> BreachServiceClient<Authed> {
        BreachServiceClient::new(self.0.clone())
    }

    pub fn compliance(&self) -> ComplianceServiceClient<Authed> {
        ComplianceServiceClient::new(self.0.clone())
    }
}
