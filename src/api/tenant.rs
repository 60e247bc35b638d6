//! `accord.v1.TenantService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::time_out;
use super::{Create, create, listed_len, required, update_paths};
use crate::auth::authorize;
use crate::domain::fields::validate_etag;
use crate::domain::names::{Id, TenantName};
use crate::domain::page::PageItem;
use crate::domain::tenant::{Tenant, TenantFields};
use crate::proto::v1 as pb;
use crate::proto::v1::tenant_service_server::TenantService;
use crate::service::Registry;

pub struct TenantApi {
    registry: Arc<Registry>,
}

impl TenantApi {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

pub fn tenant_out(t: Tenant) -> pb::Tenant {
    pb::Tenant {
        name: t.name(),
        display_name: t.display_name,
        labels: t.labels,
        etag: t.meta.etag,
        create_time: Some(time_out(t.meta.create_time)),
        update_time: Some(time_out(t.meta.update_time)),
        uid: t.uid,
    }
}

impl PageItem for Tenant {
    fn encoded_len(&self) -> usize {
        listed_len(&tenant_out(self.clone()))
    }
}

fn fields_in(t: &pb::Tenant, paths: &[&str]) -> TenantFields {
    let mut fields = TenantFields::default();
    for path in paths {
        match *path {
            "display_name" => fields.display_name = Some(t.display_name.clone()),
            "labels" => fields.labels = Some(t.labels.clone()),
            _ => unreachable!("resolve_mask returns updatable paths only"),
        }
    }
    fields
}

#[tonic::async_trait]
impl TenantService for TenantApi {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let Create {
            principal,
            caller,
            key,
            request: req,
        } = create(request, |r| &mut r.request_id)?;
        let id = Id::parse("tenant_id", &req.tenant_id)?;
        principal.check_tenant(&id)?;
        let tenant = req.tenant.unwrap_or_default();
        let fields = fields_in(&tenant, TenantFields::PATHS);
        let created = self
            .registry
            .tenants()
            .create(&caller, id, fields, key)
            .await?;
        Ok(Response::new(tenant_out(created)))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let name = TenantName::parse("name", &request.get_ref().name)?;
        authorize(&request, &name.0)?;
        let tenant = self.registry.tenants().get(&name.0).await?;
        Ok(Response::new(tenant_out(tenant)))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let req = request.get_ref();
        let page = self
            .registry
            .tenants()
            .list(req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: page.items.into_iter().map(tenant_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let req = request.get_ref();
        let tenant = required("tenant", &req.tenant)?;
        let name = TenantName::parse("tenant.name", &tenant.name)?;
        validate_etag("tenant.etag", &tenant.etag)?;
        let principal = authorize(&request, &name.0)?;
        let paths = update_paths(
            req.update_mask.as_ref(),
            tenant,
            TenantFields::PATHS,
            TenantFields::OUTPUT_ONLY,
        )?;
        let updated = self
            .registry
            .tenants()
            .update(
                &principal.caller(""),
                &name.0,
                &tenant.etag,
                fields_in(tenant, &paths),
            )
            .await?;
        Ok(Response::new(tenant_out(updated)))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.get_ref();
        let name = TenantName::parse("name", &req.name)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.0)?;
        self.registry
            .tenants()
            .delete(&principal.caller(""), &name.0, &req.etag, req.force)
            .await?;
        Ok(Response::new(()))
    }
}
