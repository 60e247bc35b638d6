//! `accord.v1.ApiKeyService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{time_in, time_out};
use super::{Create, create, listed_len};
use crate::auth::authorize;
use crate::domain::api_key::{ApiKey, ApiKeyFields, Role};
use crate::domain::fields::validate_etag;
use crate::domain::names::{Id, TenantName, parse_api_key_name};
use crate::domain::page::PageItem;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::api_key_service_server::ApiKeyService;
use crate::service::Registry;

pub struct ApiKeyApi {
    registry: Arc<Registry>,
}

impl ApiKeyApi {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

pub fn role_in(r: pb::Role) -> Option<Role> {
    Some(match r {
        pb::Role::Unspecified => return None,
        pb::Role::PlatformAdmin => Role::PlatformAdmin,
        pb::Role::TenantAdmin => Role::TenantAdmin,
        pb::Role::Editor => Role::Editor,
        pb::Role::Reader => Role::Reader,
        pb::Role::Reporter => Role::Reporter,
    })
}

fn role_out(r: Role) -> pb::Role {
    match r {
        Role::PlatformAdmin => pb::Role::PlatformAdmin,
        Role::TenantAdmin => pb::Role::TenantAdmin,
        Role::Editor => pb::Role::Editor,
        Role::Reader => pb::Role::Reader,
        Role::Reporter => pb::Role::Reporter,
    }
}

pub fn api_key_out(k: ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        name: k.name(),
        display_name: k.display_name,
        role: role_out(k.role).into(),
        expire_time: k.expire_time.map(time_out),
        last_use_time: k.last_use_time.map(time_out),
        revoke_time: k.revoke_time.map(time_out),
        secret_prefix: k.secret_prefix,
        etag: k.meta.etag,
        create_time: Some(time_out(k.meta.create_time)),
    }
}

impl PageItem for ApiKey {
    fn encoded_len(&self) -> usize {
        listed_len(&api_key_out(self.clone()))
    }
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let Create {
            principal,
            caller,
            key,
            request: req,
        } = create(request, |r| &mut r.request_id)?;
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let id = Id::parse("api_key_id", &req.api_key_id)?;
        let api_key = req.api_key.unwrap_or_default();
        let role = pb::Role::try_from(api_key.role).ok().and_then(role_in);
        if api_key.role != 0 && role.is_none() {
            return Err(
                Error::invalid("api_key.role", format!("unknown value {}", api_key.role)).into(),
            );
        }
        let expire_time = match &api_key.expire_time {
            Some(t) => Some(time_in("api_key.expire_time", t)?),
            None => None,
        };
        let fields = ApiKeyFields {
            display_name: Some(api_key.display_name),
            role,
            expire_time,
        };
        let (created, secret) = self
            .registry
            .api_keys()
            .create(&caller, &tenant, id, fields, key)
            .await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(api_key_out(created)),
            secret: secret.map(|s| s.expose().to_string()).unwrap_or_default(),
        }))
    }

    async fn get_api_key(
        &self,
        request: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let (tenant, id) = parse_api_key_name("name", &request.get_ref().name)?;
        authorize(&request, &tenant)?;
        let key = self.registry.api_keys().get(&tenant, &id).await?;
        Ok(Response::new(api_key_out(key)))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let req = request.get_ref();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        authorize(&request, &tenant)?;
        let page = self
            .registry
            .api_keys()
            .list(&tenant, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: page.items.into_iter().map(api_key_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let req = request.get_ref();
        let (tenant, id) = parse_api_key_name("name", &req.name)?;
        validate_etag("etag", &req.etag)?;
        let principal = authorize(&request, &tenant)?;
        let key = self
            .registry
            .api_keys()
            .revoke(&principal.caller(""), &tenant, &id, &req.etag)
            .await?;
        Ok(Response::new(api_key_out(key)))
    }
}
