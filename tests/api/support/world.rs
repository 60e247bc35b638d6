//! The fixture every API test starts from: a tenant built through the API,
//! with its TENANT_ADMIN key and clients that call with it, and named steps
//! to grow it (parties, services, agreements of each kind, publication,
//! termination, overrides, keys of each role) and to read it back (audit
//! trail, revisions, entitlements).
//!
//! Every step goes through the front door and panics, naming what failed,
//! when the server refuses it: a step is arrangement, not what a test checks.
//! To check a refusal, call the `try_` step, or the client itself.

use accord::domain::api_key::Role;
use accord::proto::v1 as pb;
use pb::agreement_service_client::AgreementServiceClient;
use pb::audit_service_client::AuditServiceClient;
use pb::breach_service_client::BreachServiceClient;
use pb::compliance_service_client::ComplianceServiceClient;
use pb::entitlement_service_client::EntitlementServiceClient;
use pb::measurement_service_client::MeasurementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;
use prost_types::{FieldMask, Timestamp};
use tonic::Status;
use tonic::transport::Channel;

use super::clients::{Authed, Clients};
use super::clock::{JAN_2026, ts};
use super::server::{TestServer, create_key};
use super::terms::availability;

/// A tenant and what a test builds in it. `World::new` seeds a provider
/// `platform`, a customer `bank` and a service `payments` owned by the
/// provider; `World::empty` only the tenant and its key.
#[derive(Clone)]
pub struct World {
    /// `tenants/{id}`.
    pub tenant: String,
    /// The tenant's id.
    pub id: String,
    /// The secret of the tenant's TENANT_ADMIN key `admin`.
    pub admin_key: String,
    /// `tenants/{id}/parties/platform` (PROVIDER), with `World::new`.
    pub provider: String,
    /// `tenants/{id}/parties/bank` (CUSTOMER), with `World::new`.
    pub bank: String,
    /// `tenants/{id}/services/payments`, owned by the provider, with `World::new`.
    pub payments: String,
    admin: Clients,
    /// The server's clients with the bootstrap (PLATFORM_ADMIN) key.
    platform: Clients,
    channel: Channel,
    /// With `with_request_ids`: every create sends `{prefix}-{id}`.
    request_ids: Option<String>,
}

impl World {
    /// The tenant `id` ("Tenant {id}"), its TENANT_ADMIN key `admin`, the
    /// PROVIDER `platform`, the CUSTOMER `bank` and the service `payments`
    /// ("Payments"): five audit events.
    pub async fn new(s: &TestServer, id: &str) -> World {
        let mut w = World::empty(s, id).await;
        w.provider = w
            .add_party("platform", pb::PartyKind::Provider, None)
            .await
            .name;
        w.bank = w
            .add_party("bank", pb::PartyKind::Customer, None)
            .await
            .name;
        w.payments = w
            .create_service(
                "payments",
                pb::Service {
                    display_name: "Payments".into(),
                    owner: w.provider.clone(),
                    ..Default::default()
                },
            )
            .await
            .name;
        w
    }

    /// The tenant `id` ("Tenant {id}") and its TENANT_ADMIN key `admin`,
    /// nothing else.
    pub async fn empty(s: &TestServer, id: &str) -> World {
        s.create_tenant(id, &format!("Tenant {id}")).await;
        let admin_key = s.create_key(id, "admin", pb::Role::TenantAdmin).await;
        World {
            tenant: format!("tenants/{id}"),
            id: id.into(),
            admin: s.clients(&admin_key),
            admin_key,
            provider: String::new(),
            bank: String::new(),
            payments: String::new(),
            platform: s.clients(&s.platform_key),
            channel: s.channel.clone(),
            request_ids: None,
        }
    }

    /// This world, whose creates from now on carry the request_id
    /// `{prefix}-{id}` (`{prefix}-{agreement id}-{id}` for overrides).
    pub fn with_request_ids(mut self, prefix: &str) -> World {
        self.request_ids = Some(prefix.into());
        self
    }

    fn request_id(&self, id: &str) -> String {
        match &self.request_ids {
            Some(prefix) => format!("{prefix}-{id}"),
            None => String::new(),
        }
    }

    // --- clients with the TENANT_ADMIN key ---------------------------------------

    pub fn parties(&self) -> PartyServiceClient<Authed> {
        self.admin.parties()
    }

    pub fn services(&self) -> ServiceCatalogServiceClient<Authed> {
        self.admin.services()
    }

    pub fn agreements(&self) -> AgreementServiceClient<Authed> {
        self.admin.agreements()
    }

    pub fn audit(&self) -> AuditServiceClient<Authed> {
        self.admin.audit()
    }

    pub fn entitlements(&self) -> EntitlementServiceClient<Authed> {
        self.admin.entitlements()
    }

    pub fn measurements(&self) -> MeasurementServiceClient<Authed> {
        self.admin.measurements()
    }

    pub fn breaches(&self) -> BreachServiceClient<Authed> {
        self.admin.breaches()
    }

    pub fn compliance(&self) -> ComplianceServiceClient<Authed> {
        self.admin.compliance()
    }

    // --- names ---------------------------------------------------------------------

    /// `tenants/{tenant}/{collection}/{id}`.
    pub fn name(&self, collection: &str, id: &str) -> String {
        format!("{}/{collection}/{id}", self.tenant)
    }

    /// The NOT_FOUND resource of a pair no layer applies to.
    pub fn no_entitlement(&self, consumer: &str, service: &str) -> String {
        format!("entitlement of {consumer} on {service}")
    }

    // --- keys ------------------------------------------------------------------------

    /// Creates the key `id` with `role` (with the bootstrap key, as an operator
    /// would) and returns its secret.
    pub async fn key(&self, id: &str, role: pb::Role) -> String {
        self.key_expiring(id, role, None).await
    }

    /// As `key`, expiring at `expire_time` when given.
    pub async fn key_expiring(
        &self,
        id: &str,
        role: pb::Role,
        expire_time: Option<Timestamp>,
    ) -> String {
        create_key(&self.platform, &self.id, id, role, expire_time).await
    }

    /// Revokes the key `id` (with the bootstrap key).
    pub async fn revoke_key(&self, id: &str) {
        let name = self.name("apiKeys", id);
        self.platform
            .api_keys()
            .revoke_api_key(pb::RevokeApiKeyRequest {
                name: name.clone(),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("revoke {name}: {e:?}"));
    }

    /// The admin key and new keys `editor`, `reader` and `reporter`: one
    /// secret of each tenant role.
    pub async fn key_of_each_role(&self) -> Vec<(Role, String)> {
        let mut keys = vec![(Role::TenantAdmin, self.admin_key.clone())];
        for (id, role, pb_role) in [
            ("editor", Role::Editor, pb::Role::Editor),
            ("reader", Role::Reader, pb::Role::Reader),
            ("reporter", Role::Reporter, pb::Role::Reporter),
        ] {
            keys.push((role, self.key(id, pb_role).await));
        }
        keys
    }

    /// Clients of this world's server that call with `key`.
    pub fn calling_with(&self, key: &str) -> Clients {
        Clients::new(&self.channel, key)
    }

    // --- parties and services ------------------------------------------------------------

    /// Creates the party `id` as `party` says.
    pub async fn create_party(&self, id: &str, party: pb::Party) -> pb::Party {
        self.parties()
            .create_party(pb::CreatePartyRequest {
                parent: self.tenant.clone(),
                party_id: id.into(),
                party: Some(party),
                request_id: self.request_id(id),
            })
            .await
            .unwrap_or_else(|e| panic!("create party {id}: {e:?}"))
            .into_inner()
    }

    /// A party of `kind` named `id`, under `parent` when given.
    pub async fn add_party(
        &self,
        id: &str,
        kind: pb::PartyKind,
        parent: Option<&str>,
    ) -> pb::Party {
        self.create_party(
            id,
            pb::Party {
                kind: kind.into(),
                display_name: id.into(),
                parent: parent.unwrap_or_default().into(),
                ..Default::default()
            },
        )
        .await
    }

    /// A CUSTOMER party.
    pub async fn party(&self, id: &str, parent: Option<&str>) -> String {
        self.add_party(id, pb::PartyKind::Customer, parent)
            .await
            .name
    }

    /// An INTERNAL_UNIT party.
    pub async fn unit(&self, id: &str, parent: Option<&str>) -> String {
        self.add_party(id, pb::PartyKind::InternalUnit, parent)
            .await
            .name
    }

    pub async fn reparent(&self, party: &str, parent: Option<&str>) -> pb::Party {
        self.parties()
            .update_party(pb::UpdatePartyRequest {
                party: Some(pb::Party {
                    name: party.into(),
                    parent: parent.unwrap_or_default().into(),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["parent".into()],
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("reparent {party}: {e:?}"))
            .into_inner()
    }

    pub async fn delete_party(&self, party: &str) {
        self.parties()
            .delete_party(pb::DeletePartyRequest {
                name: party.into(),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("delete {party}: {e:?}"));
    }

    /// Creates the service `id` as `service` says.
    pub async fn create_service(&self, id: &str, service: pb::Service) -> pb::Service {
        self.services()
            .create_service(pb::CreateServiceRequest {
                parent: self.tenant.clone(),
                service_id: id.into(),
                service: Some(service),
                request_id: self.request_id(id),
            })
            .await
            .unwrap_or_else(|e| panic!("create service {id}: {e:?}"))
            .into_inner()
    }

    /// A service of the provider named `id`.
    pub async fn service(&self, id: &str) -> String {
        self.create_service(
            id,
            pb::Service {
                display_name: id.into(),
                owner: self.provider.clone(),
                ..Default::default()
            },
        )
        .await
        .name
    }

    // --- agreements: bodies ----------------------------------------------------------------

    /// A SERVICE_LEVEL agreement of the provider on `payments` from 2026-01-01.
    pub fn sla(&self, objectives: Vec<pb::Objective>) -> pb::Agreement {
        pb::Agreement {
            display_name: "Payments SLA".into(),
            kind: pb::AgreementKind::ServiceLevel.into(),
            provider: self.provider.clone(),
            services: vec![self.payments.clone()],
            effective_from: Some(ts(JAN_2026)),
            objectives,
            ..Default::default()
        }
    }

    /// A CUSTOMER agreement of `consumer` on `payments` from 2026-01-01.
    pub fn deal(&self, consumer: &str, objectives: Vec<pb::Objective>) -> pb::Agreement {
        pb::Agreement {
            kind: pb::AgreementKind::Customer.into(),
            consumer: consumer.into(),
            ..self.sla(objectives)
        }
    }

    /// An INTERNAL agreement of `consumer` on `payments` from 2026-01-01.
    pub fn internal(&self, consumer: &str, objectives: Vec<pb::Objective>) -> pb::Agreement {
        pb::Agreement {
            kind: pb::AgreementKind::Internal.into(),
            ..self.deal(consumer, objectives)
        }
    }

    /// The SLA most tests need: availability 0.999.
    pub fn standard_sla(&self) -> pb::Agreement {
        self.sla(vec![availability(0.999)])
    }

    /// The bank's deal most tests need: availability 0.999.
    pub fn standard_deal(&self) -> pb::Agreement {
        self.deal(&self.bank, vec![availability(0.999)])
    }

    // --- agreements: lifecycle ---------------------------------------------------------------

    pub async fn try_draft(
        &self,
        id: &str,
        agreement: pb::Agreement,
    ) -> Result<pb::Agreement, Status> {
        self.agreements()
            .create_agreement(pb::CreateAgreementRequest {
                parent: self.tenant.clone(),
                agreement_id: id.into(),
                agreement: Some(agreement),
                request_id: self.request_id(id),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Creates the agreement `id`, a DRAFT.
    pub async fn draft(&self, id: &str, agreement: pb::Agreement) -> pb::Agreement {
        self.try_draft(id, agreement)
            .await
            .unwrap_or_else(|e| panic!("create agreement {id}: {e:?}"))
    }

    pub async fn try_publish(&self, name: &str) -> Result<pb::Agreement, Status> {
        self.agreements()
            .publish_agreement(pb::PublishAgreementRequest {
                name: name.into(),
                etag: String::new(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Publishes the draft `name`: its first revision.
    pub async fn publish_draft(&self, name: &str) -> pb::Agreement {
        self.try_publish(name)
            .await
            .unwrap_or_else(|e| panic!("publish {name}: {e:?}"))
    }

    /// Creates and publishes: the agreement's first revision.
    pub async fn publish(&self, id: &str, agreement: pb::Agreement) -> pb::Agreement {
        let draft = self.draft(id, agreement).await;
        self.publish_draft(&draft.name).await
    }

    pub async fn try_update(
        &self,
        name: &str,
        fields: pb::Agreement,
        paths: &[&str],
    ) -> Result<pb::Agreement, Status> {
        self.agreements()
            .update_agreement(pb::UpdateAgreementRequest {
                agreement: Some(pb::Agreement {
                    name: name.into(),
                    ..fields
                }),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                }),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Updates the `paths` of an agreement to those of `fields` (with its
    /// etag, if `fields` has one).
    pub async fn update(&self, name: &str, fields: pb::Agreement, paths: &[&str]) -> pb::Agreement {
        self.try_update(name, fields, paths)
            .await
            .unwrap_or_else(|e| panic!("update {name}: {e:?}"))
    }

    /// Sets the objectives of an agreement to availability `target`.
    pub async fn set_availability(&self, name: &str, target: f64) -> pb::Agreement {
        self.update(
            name,
            pb::Agreement {
                objectives: vec![availability(target)],
                ..Default::default()
            },
            &["objectives"],
        )
        .await
    }

    async fn terminate_at(&self, name: &str, at: Option<Timestamp>) -> pb::Agreement {
        self.agreements()
            .terminate_agreement(pb::TerminateAgreementRequest {
                name: name.into(),
                etag: String::new(),
                terminate_time: at,
            })
            .await
            .unwrap_or_else(|e| panic!("terminate {name}: {e:?}"))
            .into_inner()
    }

    /// Terminates an agreement at `at` (seconds).
    pub async fn terminate(&self, name: &str, at: i64) -> pb::Agreement {
        self.terminate_at(name, Some(ts(at))).await
    }

    /// Terminates an agreement now.
    pub async fn terminate_now(&self, name: &str) -> pb::Agreement {
        self.terminate_at(name, None).await
    }

    /// Deletes a never-published agreement (and with it its overrides).
    pub async fn delete_agreement(&self, name: &str) {
        self.agreements()
            .delete_agreement(pb::DeleteAgreementRequest {
                name: name.into(),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e:?}"));
    }

    pub async fn revisions(&self, agreement: &str) -> Vec<pb::AgreementRevision> {
        self.agreements()
            .list_agreement_revisions(pb::ListAgreementRevisionsRequest {
                name: agreement.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("list the revisions of {agreement}: {e:?}"))
            .into_inner()
            .revisions
    }

    // --- overrides ----------------------------------------------------------------------------

    pub async fn try_add_override(
        &self,
        agreement: &str,
        id: &str,
        o: pb::Override,
    ) -> Result<pb::Override, Status> {
        let agreement_id = agreement.rsplit('/').next().unwrap_or_default();
        self.agreements()
            .create_override(pb::CreateOverrideRequest {
                parent: agreement.into(),
                override_id: id.into(),
                r#override: Some(o),
                request_id: self.request_id(&format!("{agreement_id}-{id}")),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Creates the override `id` of the agreement named `agreement`.
    pub async fn add_override(&self, agreement: &str, id: &str, o: pb::Override) -> pb::Override {
        self.try_add_override(agreement, id, o)
            .await
            .unwrap_or_else(|e| panic!("create override {id}: {e:?}"))
    }

    pub async fn update_override(
        &self,
        name: &str,
        o: pb::Override,
        paths: &[&str],
    ) -> pb::Override {
        self.agreements()
            .update_override(pb::UpdateOverrideRequest {
                r#override: Some(pb::Override {
                    name: name.into(),
                    ..o
                }),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("update {name}: {e:?}"))
            .into_inner()
    }

    pub async fn delete_override(&self, name: &str) {
        self.agreements()
            .delete_override(pb::DeleteOverrideRequest {
                name: name.into(),
                etag: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("delete {name}: {e:?}"));
    }

    // --- reading back -----------------------------------------------------------------------

    /// The party `name` as it is now (its etag included).
    pub async fn get_party(&self, name: &str) -> pb::Party {
        self.parties()
            .get_party(pb::GetPartyRequest { name: name.into() })
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e:?}"))
            .into_inner()
    }

    /// The agreement `name` as it is now (its etag included).
    pub async fn get_agreement(&self, name: &str) -> pb::Agreement {
        self.agreements()
            .get_agreement(pb::GetAgreementRequest { name: name.into() })
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e:?}"))
            .into_inner()
    }

    /// Every audit event of this tenant about `resource` (all of them when
    /// empty), newest first, following page tokens (pages end early when
    /// their events are large).
    pub async fn audit_events(&self, resource: &str) -> Vec<pb::AuditEvent> {
        let (mut events, mut page_token) = (Vec::new(), String::new());
        loop {
            let page = self
                .audit()
                .list_audit_events(pb::ListAuditEventsRequest {
                    parent: self.tenant.clone(),
                    resource: resource.into(),
                    page_size: 1000,
                    page_token,
                    ..Default::default()
                })
                .await
                .expect("list audit events")
                .into_inner();
            events.extend(page.audit_events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }

    // --- entitlements -------------------------------------------------------------------------

    pub fn resolve_request(&self, consumer: &str, service: &str) -> pb::ResolveEntitlementRequest {
        pb::ResolveEntitlementRequest {
            parent: self.tenant.clone(),
            consumer: consumer.into(),
            service: service.into(),
            as_of: None,
            known_at: None,
        }
    }

    pub fn explain_request(&self, consumer: &str, service: &str) -> pb::ExplainEntitlementRequest {
        pb::ExplainEntitlementRequest {
            parent: self.tenant.clone(),
            consumer: consumer.into(),
            service: service.into(),
            as_of: None,
            known_at: None,
        }
    }

    pub fn batch_request(&self, pairs: &[(&str, &str)]) -> pb::BatchResolveEntitlementsRequest {
        pb::BatchResolveEntitlementsRequest {
            parent: self.tenant.clone(),
            pairs: pairs
                .iter()
                .map(|(c, s)| pb::EntitlementPair {
                    consumer: c.to_string(),
                    service: s.to_string(),
                })
                .collect(),
            as_of: None,
            known_at: None,
        }
    }

    /// A watch of the bank on `payments`, with heartbeats every
    /// `heartbeat_seconds` when given.
    pub fn watch_request(&self, heartbeat_seconds: Option<i64>) -> pb::WatchEntitlementsRequest {
        pb::WatchEntitlementsRequest {
            parent: self.tenant.clone(),
            pairs: vec![pb::EntitlementPair {
                consumer: self.bank.clone(),
                service: self.payments.clone(),
            }],
            heartbeat_interval: heartbeat_seconds
                .map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
        }
    }

    pub async fn resolve(
        &self,
        consumer: &str,
        service: &str,
        as_of: Option<Timestamp>,
        known_at: Option<Timestamp>,
    ) -> Result<pb::Entitlement, Status> {
        self.entitlements()
            .resolve_entitlement(pb::ResolveEntitlementRequest {
                as_of,
                known_at,
                ..self.resolve_request(consumer, service)
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Resolves now; the entitlement must exist.
    pub async fn resolve_now(&self, consumer: &str, service: &str) -> pb::Entitlement {
        self.resolve(consumer, service, None, None)
            .await
            .unwrap_or_else(|e| panic!("resolve {consumer} on {service}: {e:?}"))
    }

    pub async fn explain(
        &self,
        consumer: &str,
        service: &str,
        as_of: Option<Timestamp>,
        known_at: Option<Timestamp>,
    ) -> Result<pb::EntitlementExplanation, Status> {
        self.entitlements()
            .explain_entitlement(pb::ExplainEntitlementRequest {
                as_of,
                known_at,
                ..self.explain_request(consumer, service)
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn batch(
        &self,
        pairs: &[(&str, &str)],
        as_of: Option<Timestamp>,
        known_at: Option<Timestamp>,
    ) -> Result<Vec<pb::EntitlementResult>, Status> {
        self.entitlements()
            .batch_resolve_entitlements(pb::BatchResolveEntitlementsRequest {
                as_of,
                known_at,
                ..self.batch_request(pairs)
            })
            .await
            .map(|r| r.into_inner().results)
    }

    /// The availability target `client` resolves for the bank on `payments`
    /// (the first objective's), or the code it fails with.
    pub async fn availability_of(
        &self,
        client: &mut EntitlementServiceClient<Authed>,
    ) -> Result<f64, tonic::Code> {
        self.availability_on(client, &self.payments).await
    }

    /// As `availability_of`, on `service`.
    pub async fn availability_on(
        &self,
        client: &mut EntitlementServiceClient<Authed>,
        service: &str,
    ) -> Result<f64, tonic::Code> {
        client
            .resolve_entitlement(self.resolve_request(&self.bank, service))
            .await
            .map(|r| {
                r.into_inner().objectives[0]
                    .objective
                    .as_ref()
                    .expect("objective")
                    .target
            })
            .map_err(|status| status.code())
    }
}
