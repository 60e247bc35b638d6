//! `accord.v1.PartyService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{resource_enum_in, time_out};
use super::{Create, create, listed_len, required, update_paths};
use crate::auth::authorize;
use crate::domain::fields::validate_etag;
use crate::domain::names::{Collection, Id, ResourceName, TenantName, party_name};
use crate::domain::page::PageItem;
use crate::domain::party::{Party, PartyFields, PartyKind};
use crate::error::{Error, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::party_service_server::PartyService;
use crate::service::Registry;

pub struct PartyApi {
    registry: Arc<Registry>,
}

impl PartyApi {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

fn kind_in(k: pb::PartyKind) -> Option<PartyKind> {
    Some(match k {
        pb::PartyKind::Unspecified => return None,
        pb::PartyKind::Provider => PartyKind::Provider,
        pb::PartyKind::Customer => PartyKind::Customer,
        pb::PartyKind::InternalUnit => PartyKind::InternalUnit,
        pb::PartyKind::Supplier => PartyKind::Supplier,
    })
}

fn kind_out(k: PartyKind) -> pb::PartyKind {
    match k {
        PartyKind::Provider => pb::PartyKind::Provider,
        PartyKind::Customer => pb::PartyKind::Customer,
        PartyKind::InternalUnit => pb::PartyKind::InternalUnit,
        PartyKind::Supplier => pb::PartyKind::Supplier,
    }
}

pub fn party_out(p: Party) -> pb::Party {
    pb::Party {
        name: p.name(),
        display_name: p.display_name,
        kind: kind_out(p.kind).into(),
        parent: p
            .parent
            .map(|parent| party_name(&p.tenant, &parent))
            .unwrap_or_default(),
        labels: p.labels,
        etag: p.meta.etag,
        create_time: Some(time_out(p.meta.create_time)),
        update_time: Some(time_out(p.meta.update_time)),
    }
}

impl PageItem for Party {
    fn encoded_len(&self) -> usize {
        listed_len(&party_out(self.clone()))
    }
}

fn fields_in(p: &pb::Party, paths: &[&str], tenant: &Id) -> Result<PartyFields, Error> {
    let mut v = Violations::new();
    let mut fields = PartyFields::default();
    for path in paths {
        match *path {
            "display_name" => fields.display_name = Some(p.display_name.clone()),
            "kind" => fields.kind = resource_enum_in(&mut v, "party.kind", p.kind, kind_in),
            "parent" => {
                fields.parent = Some(if p.parent.is_empty() {
                    None
                } else {
                    v.check(ResourceName::parse_in(
                        "party.parent",
                        &p.parent,
                        Collection::Parties,
                        tenant,
                    ))
                })
            }
            "labels" => fields.labels = Some(p.labels.clone()),
            _ => unreachable!("resolve_mask returns updatable paths only"),
        }
    }
    v.into_result()?;
    Ok(fields)
}

#[tonic::async_trait]
impl PartyService for PartyApi {
    async fn create_party(
        &self,
        request: Request<pb::CreatePartyRequest>,
    ) -> Result<Response<pb::Party>, Status> {
        let Create {
            principal,
            caller,
            key,
            request: req,
        } = create(request, |r| &mut r.request_id)?;
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let id = Id::parse("party_id", &req.party_id)?;
        let party = req.party.unwrap_or_default();
        let fields = fields_in(&party, PartyFields::PATHS, &tenant)?;
        let created = self
            .registry
            .parties()
            .create(&caller, &tenant, id, fields, key)
            .await?;
        Ok(Response::new(party_out(created)))
    }

    async fn get_party(
        &self,
        request: Request<pb::GetPartyRequest>,
    ) -> Result<Response<pb::Party>, Status> {
        let name = ResourceName::parse("name", &request.get_ref().name, Collection::Parties)?;
        authorize(&request, &name.tenant)?;
        let party = self.registry.parties().get(&name.tenant, &name.id).await?;
        Ok(Response::new(party_out(party)))
    }

    async fn list_parties(
        &self,
        request: Request<pb::ListPartiesRequest>,
    ) -> Result<Response<pb::ListPartiesResponse>, Status> {
        let req = request.get_ref();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        authorize(&request, &tenant)?;
        let page = self
            .registry
            .parties()
            .list(&tenant, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListPartiesResponse {
            parties: page.items.into_iter().map(party_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_party(
        &self,
        request: Request<pb::UpdatePartyRequest>,
    ) -> Result<Response<pb::Party>, Status> {
        let req = request.get_ref();
        let party = required("party", &req.party)?;
        let name = ResourceName::parse("party.name", &party.name, Collection::Parties)?;
        validate_etag("party.etag", &party.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        let paths = update_paths(
            req.update_mask.as_ref(),
            party,
            PartyFields::PATHS,
            PartyFields::OUTPUT_ONLY,
        )?;
        let fields = fields_in(party, &paths, &name.tenant)?;
        let updated = self
            .registry
            .parties()
            .update(
                &principal.caller(""),
                &name.tenant,
                &name.id,
                &party.etag,
                fields,
            )
            .await?;
        Ok(Response::new(party_out(updated)))
    }

    async fn delete_party(
        &self,
        request: Request<pb::DeletePartyRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.get_ref();
        let name = ResourceName::parse("name", &req.name, Collection::Parties)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        self.registry
            .parties()
            .delete(&principal.caller(""), &name.tenant, &name.id, &req.etag)
            .await?;
        Ok(Response::new(()))
    }
}
