//! `accord.v1.AgreementService`: agreements, revisions and overrides.

use std::sync::Arc;

use chrono::Utc;
use tonic::{Request, Response, Status};

use super::convert::*;
use super::{Create, create, listed_len, required, update_paths};
use crate::auth::authorize;
use crate::domain::agreement::{
    Agreement, AgreementFields, AgreementKind, AgreementState, Revision,
};
use crate::domain::fields::validate_etag;
use crate::domain::names::{
    AgreementChildName, Collection, Id, ResourceName, TenantName, agreement_name, party_name,
    service_name,
};
use crate::domain::overrides::{Override, OverrideFields};
use crate::domain::page::PageItem;
use crate::error::{Error, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::agreement_service_server::AgreementService;
use crate::service::Registry;

pub struct AgreementApi {
    registry: Arc<Registry>,
}

impl AgreementApi {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

fn kind_in(k: pb::AgreementKind) -> Option<AgreementKind> {
    Some(match k {
        pb::AgreementKind::Unspecified => return None,
        pb::AgreementKind::ServiceLevel => AgreementKind::ServiceLevel,
        pb::AgreementKind::Customer => AgreementKind::Customer,
        pb::AgreementKind::Internal => AgreementKind::Internal,
        pb::AgreementKind::Operational => AgreementKind::Operational,
        pb::AgreementKind::Underpinning => AgreementKind::Underpinning,
    })
}

fn kind_out(k: AgreementKind) -> pb::AgreementKind {
    match k {
        AgreementKind::ServiceLevel => pb::AgreementKind::ServiceLevel,
        AgreementKind::Customer => pb::AgreementKind::Customer,
        AgreementKind::Internal => pb::AgreementKind::Internal,
        AgreementKind::Operational => pb::AgreementKind::Operational,
        AgreementKind::Underpinning => pb::AgreementKind::Underpinning,
    }
}

fn state_out(s: AgreementState) -> pb::AgreementState {
    match s {
        AgreementState::Draft => pb::AgreementState::Draft,
        AgreementState::Active => pb::AgreementState::Active,
        AgreementState::Expired => pb::AgreementState::Expired,
        AgreementState::Terminated => pb::AgreementState::Terminated,
    }
}

pub fn agreement_out(a: Agreement) -> pb::Agreement {
    let t = &a.tenant;
    pb::Agreement {
        name: a.name(),
        state: state_out(a.state_at(Utc::now())).into(),
        display_name: a.display_name,
        description: a.description,
        kind: kind_out(a.kind).into(),
        provider: party_name(t, &a.provider),
        consumer: a.consumer.map(|c| party_name(t, &c)).unwrap_or_default(),
        services: a.services.iter().map(|s| service_name(t, s)).collect(),
        effective_from: Some(time_out(a.effective_from)),
        effective_until: a.effective_until.map(time_out),
        objectives: a.objectives.iter().map(objective_out).collect(),
        support: a.support.as_ref().map(support_out),
        credits: a.credits.as_ref().map(credits_out),
        exclusions: a.exclusions.iter().map(exclusion_out).collect(),
        clauses: a.clauses.iter().map(clause_out).collect(),
        supports: a.supports.iter().map(|s| agreement_name(t, s)).collect(),
        labels: a.labels,
        annotations: a.annotations,
        etag: a.meta.etag,
        create_time: Some(time_out(a.meta.create_time)),
        update_time: Some(time_out(a.meta.update_time)),
        revision_id: a
            .revision
            .as_ref()
            .map(|r| r.id.to_string())
            .unwrap_or_default(),
        revision_create_time: a.revision.as_ref().map(|r| time_out(r.create_time)),
        terminate_time: a.terminate_time.map(time_out),
    }
}

fn revision_out(r: Revision) -> pb::AgreementRevision {
    pb::AgreementRevision {
        name: r.name(),
        revision_id: r.id.to_string(),
        create_time: Some(time_out(r.create_time)),
        agreement: Some(agreement_out(r.snapshot)),
    }
}

impl PageItem for Agreement {
    fn encoded_len(&self) -> usize {
        listed_len(&agreement_out(self.clone()))
    }
}

impl PageItem for Revision {
    fn encoded_len(&self) -> usize {
        listed_len(&revision_out(self.clone()))
    }
}

impl PageItem for Override {
    fn encoded_len(&self) -> usize {
        listed_len(&override_out(self.clone()))
    }
}

/// Decodes a list of at most `max` names in `tenant`, each violation naming
/// its index.
fn names_in(
    v: &mut Violations,
    field: &str,
    names: &[String],
    max: usize,
    collection: Collection,
    tenant: &Id,
) -> Vec<Id> {
    bounded(v, field, names, max)
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            v.check(ResourceName::parse_in(
                &format!("{field}[{i}]"),
                n,
                collection,
                tenant,
            ))
        })
        .collect()
}

fn party_in(v: &mut Violations, field: &str, name: &str, tenant: &Id) -> Option<Id> {
    v.check(ResourceName::parse_in(
        field,
        name,
        Collection::Parties,
        tenant,
    ))
}

fn agreement_fields_in(
    a: &pb::Agreement,
    paths: &[&str],
    tenant: &Id,
) -> Result<AgreementFields, Error> {
    let mut v = Violations::new();
    let v = &mut v;
    let mut f = AgreementFields::default();
    for path in paths {
        match *path {
            "display_name" => f.display_name = Some(a.display_name.clone()),
            "description" => f.description = Some(a.description.clone()),
            "kind" => f.kind = resource_enum_in(v, "agreement.kind", a.kind, kind_in),
            "provider" => f.provider = party_in(v, "agreement.provider", &a.provider, tenant),
            "consumer" => {
                f.consumer = Some(if a.consumer.is_empty() {
                    None
                } else {
                    party_in(v, "agreement.consumer", &a.consumer, tenant)
                })
            }
            "services" => {
                f.services = Some(names_in(
                    v,
                    "agreement.services",
                    &a.services,
                    Agreement::MAX_SERVICES,
                    Collection::Services,
                    tenant,
                ))
            }
            "effective_from" => {
                f.effective_from =
                    required_time_in(v, "agreement.effective_from", &a.effective_from)
            }
            "effective_until" => {
                f.effective_until = Some(opt_time_in(
                    v,
                    "agreement.effective_until",
                    &a.effective_until,
                ))
            }
            "objectives" => {
                f.objectives = Some(objectives_in(v, "agreement.objectives", &a.objectives))
            }
            "support" => {
                f.support = Some(
                    a.support
                        .as_ref()
                        .map(|s| support_in(v, "agreement.support", s)),
                )
            }
            "credits" => {
                f.credits = Some(
                    a.credits
                        .as_ref()
                        .map(|c| credits_in(v, "agreement.credits", c)),
                )
            }
            "exclusions" => {
                f.exclusions = Some(
                    bounded(
                        v,
                        "agreement.exclusions",
                        &a.exclusions,
                        Agreement::MAX_EXCLUSIONS,
                    )
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| exclusion_in(v, &format!("agreement.exclusions[{i}]"), e))
                    .collect(),
                )
            }
            "clauses" => {
                f.clauses = Some(
                    bounded(v, "agreement.clauses", &a.clauses, Agreement::MAX_CLAUSES)
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| clause_in(v, &format!("agreement.clauses[{i}]"), c))
                        .collect(),
                )
            }
            "supports" => {
                f.supports = Some(names_in(
                    v,
                    "agreement.supports",
                    &a.supports,
                    Agreement::MAX_SUPPORTS,
                    Collection::Agreements,
                    tenant,
                ))
            }
            "labels" => f.labels = Some(a.labels.clone()),
            "annotations" => f.annotations = Some(a.annotations.clone()),
            _ => unreachable!("resolve_mask returns updatable paths only"),
        }
    }
    std::mem::take(v).into_result()?;
    Ok(f)
}

pub fn override_out(o: Override) -> pb::Override {
    pb::Override {
        name: o.name(),
        display_name: o.display_name,
        consumer: party_name(&o.tenant, &o.consumer),
        effective_from: Some(time_out(o.effective_from)),
        effective_until: o.effective_until.map(time_out),
        objective_patches: o
            .objective_patches
            .iter()
            .map(objective_patch_out)
            .collect(),
        added_objectives: o.added_objectives.iter().map(objective_out).collect(),
        support: o.support.as_ref().map(support_out),
        credits: o.credits.as_ref().map(credits_out),
        labels: o.labels,
        etag: o.meta.etag,
        create_time: Some(time_out(o.meta.create_time)),
        update_time: Some(time_out(o.meta.update_time)),
    }
}

fn override_fields_in(
    o: &pb::Override,
    paths: &[&str],
    tenant: &Id,
) -> Result<OverrideFields, Error> {
    let mut v = Violations::new();
    let v = &mut v;
    let mut f = OverrideFields::default();
    for path in paths {
        match *path {
            "display_name" => f.display_name = Some(o.display_name.clone()),
            "consumer" => f.consumer = party_in(v, "override.consumer", &o.consumer, tenant),
            "effective_from" => {
                f.effective_from = required_time_in(v, "override.effective_from", &o.effective_from)
            }
            "effective_until" => {
                f.effective_until = Some(opt_time_in(
                    v,
                    "override.effective_until",
                    &o.effective_until,
                ))
            }
            "objective_patches" => {
                f.objective_patches = Some(
                    bounded(
                        v,
                        "override.objective_patches",
                        &o.objective_patches,
                        Override::MAX_PATCHES,
                    )
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        objective_patch_in(v, &format!("override.objective_patches[{i}]"), p)
                    })
                    .collect(),
                )
            }
            "added_objectives" => {
                f.added_objectives = Some(objectives_in(
                    v,
                    "override.added_objectives",
                    &o.added_objectives,
                ))
            }
            "support" => {
                f.support = Some(
                    o.support
                        .as_ref()
                        .map(|s| support_in(v, "override.support", s)),
                )
            }
            "credits" => {
                f.credits = Some(
                    o.credits
                        .as_ref()
                        .map(|c| credits_in(v, "override.credits", c)),
                )
            }
            "labels" => f.labels = Some(o.labels.clone()),
            _ => unreachable!("resolve_mask returns updatable paths only"),
        }
    }
    std::mem::take(v).into_result()?;
    Ok(f)
}

fn agreement_name_in(field: &str, name: &str) -> Result<ResourceName, Error> {
    Ok(ResourceName::parse(field, name, Collection::Agreements)?)
}

#[tonic::async_trait]
impl AgreementService for AgreementApi {
    async fn create_agreement(
        &self,
        request: Request<pb::CreateAgreementRequest>,
    ) -> Result<Response<pb::Agreement>, Status> {
        let Create {
            principal,
            caller,
            key,
            request: req,
        } = create(request, |r| &mut r.request_id)?;
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let id = Id::parse("agreement_id", &req.agreement_id)?;
        let agreement = req.agreement.unwrap_or_default();
        let fields = agreement_fields_in(&agreement, AgreementFields::PATHS, &tenant)?;
        let created = self
            .registry
            .agreements()
            .create(&caller, &tenant, id, fields, key)
            .await?;
        Ok(Response::new(agreement_out(created)))
    }

    async fn get_agreement(
        &self,
        request: Request<pb::GetAgreementRequest>,
    ) -> Result<Response<pb::Agreement>, Status> {
        let name = agreement_name_in("name", &request.get_ref().name)?;
        authorize(&request, &name.tenant)?;
        let a = self
            .registry
            .agreements()
            .get(&name.tenant, &name.id)
            .await?;
        Ok(Response::new(agreement_out(a)))
    }

    async fn list_agreements(
        &self,
        request: Request<pb::ListAgreementsRequest>,
    ) -> Result<Response<pb::ListAgreementsResponse>, Status> {
        let req = request.get_ref();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        authorize(&request, &tenant)?;
        let page = self
            .registry
            .agreements()
            .list(&tenant, &req.filter, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListAgreementsResponse {
            agreements: page.items.into_iter().map(agreement_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_agreement(
        &self,
        request: Request<pb::UpdateAgreementRequest>,
    ) -> Result<Response<pb::Agreement>, Status> {
        let req = request.get_ref();
        let a = required("agreement", &req.agreement)?;
        let name = agreement_name_in("agreement.name", &a.name)?;
        validate_etag("agreement.etag", &a.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        let paths = update_paths(
            req.update_mask.as_ref(),
            a,
            AgreementFields::PATHS,
            AgreementFields::OUTPUT_ONLY,
        )?;
        let fields = agreement_fields_in(a, &paths, &name.tenant)?;
        let updated = self
            .registry
            .agreements()
            .update(
                &principal.caller(""),
                &name.tenant,
                &name.id,
                &a.etag,
                fields,
            )
            .await?;
        Ok(Response::new(agreement_out(updated)))
    }

    async fn delete_agreement(
        &self,
        request: Request<pb::DeleteAgreementRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.get_ref();
        let name = agreement_name_in("name", &req.name)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        self.registry
            .agreements()
            .delete(&principal.caller(""), &name.tenant, &name.id, &req.etag)
            .await?;
        Ok(Response::new(()))
    }

    async fn publish_agreement(
        &self,
        request: Request<pb::PublishAgreementRequest>,
    ) -> Result<Response<pb::Agreement>, Status> {
        let req = request.get_ref();
        let name = agreement_name_in("name", &req.name)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        let a = self
            .registry
            .agreements()
            .publish(&principal.caller(""), &name.tenant, &name.id, &req.etag)
            .await?;
        Ok(Response::new(agreement_out(a)))
    }

    async fn terminate_agreement(
        &self,
        request: Request<pb::TerminateAgreementRequest>,
    ) -> Result<Response<pb::Agreement>, Status> {
        let req = request.get_ref();
        let name = agreement_name_in("name", &req.name)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        let at = match &req.terminate_time {
            None => None,
            Some(t) => Some(time_in("terminate_time", t).map_err(Error::from)?),
        };
        let a = self
            .registry
            .agreements()
            .terminate(&principal.caller(""), &name.tenant, &name.id, &req.etag, at)
            .await?;
        Ok(Response::new(agreement_out(a)))
    }

    async fn list_agreement_revisions(
        &self,
        request: Request<pb::ListAgreementRevisionsRequest>,
    ) -> Result<Response<pb::ListAgreementRevisionsResponse>, Status> {
        let req = request.get_ref();
        let name = agreement_name_in("name", &req.name)?;
        authorize(&request, &name.tenant)?;
        let page = self
            .registry
            .agreements()
            .list_revisions(&name.tenant, &name.id, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListAgreementRevisionsResponse {
            revisions: page.items.into_iter().map(revision_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_agreement_revision(
        &self,
        request: Request<pb::GetAgreementRevisionRequest>,
    ) -> Result<Response<pb::AgreementRevision>, Status> {
        let name = AgreementChildName::parse("name", &request.get_ref().name, "revisions")
            .map_err(Error::from)?;
        authorize(&request, &name.tenant)?;
        let r = self
            .registry
            .agreements()
            .get_revision(&name.tenant, &name.agreement, &name.id)
            .await?;
        Ok(Response::new(revision_out(r)))
    }

    async fn create_override(
        &self,
        request: Request<pb::CreateOverrideRequest>,
    ) -> Result<Response<pb::Override>, Status> {
        let Create {
            principal,
            caller,
            key,
            request: req,
        } = create(request, |r| &mut r.request_id)?;
        let parent = agreement_name_in("parent", &req.parent)?;
        principal.check_tenant(&parent.tenant)?;
        let id = Id::parse("override_id", &req.override_id)?;
        let o = req.r#override.unwrap_or_default();
        let fields = override_fields_in(&o, OverrideFields::PATHS, &parent.tenant)?;
        let created = self
            .registry
            .overrides()
            .create(&caller, &parent.tenant, &parent.id, id, fields, key)
            .await?;
        Ok(Response::new(override_out(created)))
    }

    async fn get_override(
        &self,
        request: Request<pb::GetOverrideRequest>,
    ) -> Result<Response<pb::Override>, Status> {
        let name = AgreementChildName::parse("name", &request.get_ref().name, "overrides")
            .map_err(Error::from)?;
        authorize(&request, &name.tenant)?;
        let o = self
            .registry
            .overrides()
            .get(&name.tenant, &name.agreement, &name.id)
            .await?;
        Ok(Response::new(override_out(o)))
    }

    async fn list_overrides(
        &self,
        request: Request<pb::ListOverridesRequest>,
    ) -> Result<Response<pb::ListOverridesResponse>, Status> {
        let req = request.get_ref();
        let parent = agreement_name_in("parent", &req.parent)?;
        authorize(&request, &parent.tenant)?;
        let page = self
            .registry
            .overrides()
            .list(&parent.tenant, &parent.id, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListOverridesResponse {
            overrides: page.items.into_iter().map(override_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_override(
        &self,
        request: Request<pb::UpdateOverrideRequest>,
    ) -> Result<Response<pb::Override>, Status> {
        let req = request.get_ref();
        let o = required("override", &req.r#override)?;
        let name = AgreementChildName::parse("override.name", &o.name, "overrides")
            .map_err(Error::from)?;
        validate_etag("override.etag", &o.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        let paths = update_paths(
            req.update_mask.as_ref(),
            o,
            OverrideFields::PATHS,
            OverrideFields::OUTPUT_ONLY,
        )?;
        let fields = override_fields_in(o, &paths, &name.tenant)?;
        let updated = self
            .registry
            .overrides()
            .update(
                &principal.caller(""),
                &name.tenant,
                &name.agreement,
                &name.id,
                &o.etag,
                fields,
            )
            .await?;
        Ok(Response::new(override_out(updated)))
    }

    async fn delete_override(
        &self,
        request: Request<pb::DeleteOverrideRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.get_ref();
        let name =
            AgreementChildName::parse("name", &req.name, "overrides").map_err(Error::from)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        self.registry
            .overrides()
            .delete(
                &principal.caller(""),
                &name.tenant,
                &name.agreement,
                &name.id,
                &req.etag,
            )
            .await?;
        Ok(Response::new(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    /// The three lists of updatable fields (the domain's, the implied mask's,
    /// the decoder's) must name the same fields.
    #[test]
    fn agreement_field_lists_agree() {
        let name = |c: &str| format!("tenants/t/{c}/x");
        let full = pb::Agreement {
            display_name: "d".into(),
            description: "d".into(),
            kind: pb::AgreementKind::Customer.into(),
            provider: name("parties"),
            consumer: name("parties"),
            services: vec![name("services")],
            effective_from: Some(time_out(Utc::now())),
            effective_until: Some(time_out(Utc::now())),
            objectives: vec![pb::Objective::default()],
            support: Some(pb::SupportTerms::default()),
            credits: Some(pb::CreditSchedule::default()),
            exclusions: vec![pb::Exclusion::default()],
            clauses: vec![pb::Clause::default()],
            supports: vec![name("agreements")],
            labels: [("k".to_string(), "v".to_string())].into(),
            annotations: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            crate::api::set_fields(&full, AgreementFields::PATHS),
            AgreementFields::PATHS
        );
        // Every updatable path decodes (shape errors are fine, panics are not).
        let _ = agreement_fields_in(&full, AgreementFields::PATHS, &id("t"));
    }

    #[test]
    fn override_field_lists_agree() {
        let full = pb::Override {
            display_name: "d".into(),
            consumer: "tenants/t/parties/x".into(),
            effective_from: Some(time_out(Utc::now())),
            effective_until: Some(time_out(Utc::now())),
            objective_patches: vec![pb::ObjectivePatch::default()],
            added_objectives: vec![pb::Objective::default()],
            support: Some(pb::SupportTerms::default()),
            credits: Some(pb::CreditSchedule::default()),
            labels: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            crate::api::set_fields(&full, OverrideFields::PATHS),
            OverrideFields::PATHS
        );
        let _ = override_fields_in(&full, OverrideFields::PATHS, &id("t"));
    }
}
