//! `accord.v1.ServiceCatalogService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::time_out;
use super::{Create, create, listed_len, required, update_paths};
use crate::auth::authorize;
use crate::domain::fields::validate_etag;
use crate::domain::names::{Collection, Id, ResourceName, TenantName, party_name};
use crate::domain::page::PageItem;
use crate::domain::service::{Service, ServiceFields};
use crate::error::{Error, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::service_catalog_service_server::ServiceCatalogService;
use crate::service::Registry;

pub struct ServiceCatalogApi {
    registry: Arc<Registry>,
}

impl ServiceCatalogApi {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

pub fn service_out(s: Service) -> pb::Service {
    pb::Service {
        name: s.name(),
        display_name: s.display_name,
        description: s.description,
        owner: party_name(&s.tenant, &s.owner),
        labels: s.labels,
        etag: s.meta.etag,
        create_time: Some(time_out(s.meta.create_time)),
        update_time: Some(time_out(s.meta.update_time)),
    }
}

impl PageItem for Service {
    fn encoded_len(&self) -> usize {
        listed_len(&service_out(self.clone()))
    }
}

fn fields_in(s: &pb::Service, paths: &[&str], tenant: &Id) -> Result<ServiceFields, Error> {
    let mut v = Violations::new();
    let mut fields = ServiceFields::default();
    for path in paths {
        match *path {
            "display_name" => fields.display_name = Some(s.display_name.clone()),
            "description" => fields.description = Some(s.description.clone()),
            "owner" => {
                fields.owner = v.check(ResourceName::parse_in(
                    "service.owner",
                    &s.owner,
                    Collection::Parties,
                    tenant,
                ))
            }
            "labels" => fields.labels = Some(s.labels.clone()),
            _ => unreachable!("resolve_mask returns updatable paths only"),
        }
    }
    v.into_result()?;
    Ok(fields)
}

#[tonic::async_trait]
impl ServiceCatalogService for ServiceCatalogApi {
    async fn create_service(
        &self,
        request: Request<pb::CreateServiceRequest>,
    ) -> Result<Response<pb::Service>, Status> {
        let Create {
            principal,
            caller,
            key,
            request: req,
        } = create(request, |r| &mut r.request_id)?;
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let id = Id::parse("service_id", &req.service_id)?;
        let service = req.service.unwrap_or_default();
        let fields = fields_in(&service, ServiceFields::PATHS, &tenant)?;
        let created = self
            .registry
            .catalog()
            .create(&caller, &tenant, id, fields, key)
            .await?;
        Ok(Response::new(service_out(created)))
    }

    async fn get_service(
        &self,
        request: Request<pb::GetServiceRequest>,
    ) -> Result<Response<pb::Service>, Status> {
        let name = ResourceName::parse("name", &request.get_ref().name, Collection::Services)?;
        authorize(&request, &name.tenant)?;
        let service = self.registry.catalog().get(&name.tenant, &name.id).await?;
        Ok(Response::new(service_out(service)))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let req = request.get_ref();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        authorize(&request, &tenant)?;
        let page = self
            .registry
            .catalog()
            .list(&tenant, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListServicesResponse {
            services: page.items.into_iter().map(service_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_service(
        &self,
        request: Request<pb::UpdateServiceRequest>,
    ) -> Result<Response<pb::Service>, Status> {
        let req = request.get_ref();
        let service = required("service", &req.service)?;
        let name = ResourceName::parse("service.name", &service.name, Collection::Services)?;
        validate_etag("service.etag", &service.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        let paths = update_paths(
            req.update_mask.as_ref(),
            service,
            ServiceFields::PATHS,
            ServiceFields::OUTPUT_ONLY,
        )?;
        let fields = fields_in(service, &paths, &name.tenant)?;
        let updated = self
            .registry
            .catalog()
            .update(
                &principal.caller(""),
                &name.tenant,
                &name.id,
                &service.etag,
                fields,
            )
            .await?;
        Ok(Response::new(service_out(updated)))
    }

    async fn delete_service(
        &self,
        request: Request<pb::DeleteServiceRequest>,
    ) -> Result<Response<()>, Status> {
        let req = request.get_ref();
        let name = ResourceName::parse("name", &req.name, Collection::Services)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &name.tenant)?;
        self.registry
            .catalog()
            .delete(&principal.caller(""), &name.tenant, &name.id, &req.etag)
            .await?;
        Ok(Response::new(()))
    }
}
