//! Authentication and authorization. Every `accord.v1` call carries
//! `authorization: Bearer <secret>`; the `Authenticate` layer turns it into a
//! `Principal` (or UNAUTHENTICATED), checks the method's roles in the one
//! table (`methods.rs`), and hands the principal to the API, which checks the
//! tenant of every name the request carries.

pub mod methods;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{Duration as ChronoDuration, Utc};
use tracing::warn;

use crate::domain::api_key::{ApiKey, Role, Secret, hash_secret};
use crate::domain::audit::Caller;
use crate::domain::changes::{Change, Changes};
use crate::domain::names::Id;
use crate::error::Error;
use crate::store::{Access, Store};

/// Who is calling: the key's tenant (none for the bootstrap key), its role and
/// its name, and the method the layer let it call, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: Option<Id>,
    pub role: Role,
    pub key: String,
    pub method: &'static str,
}

impl Principal {
    /// A tenant key may only name its own tenant. The platform admin may name
    /// any, for the methods the table lets it call. The answer is the same
    /// whether or not the named resource exists.
    pub fn check_tenant(&self, tenant: &Id) -> Result<(), Error> {
        match &self.tenant {
            None if self.role == Role::PlatformAdmin => Ok(()),
            Some(own) if own == tenant => Ok(()),
            _ => Err(Error::PermissionDenied(format!(
                "{} may not act on tenants/{tenant}",
                self.key
            ))),
        }
    }

    /// The caller of a change, as the audit trail records it.
    pub fn caller(&self, request_id: &str) -> Caller {
        Caller {
            actor: self.key.clone(),
            method: self.method,
            request_id: request_id.to_string(),
        }
    }
}

/// The principal the layer attached to a request.
pub fn principal<T>(request: &tonic::Request<T>) -> Result<&Principal, Error> {
    request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Error::Unauthenticated("no credentials".into()))
}

/// The key name of the bootstrap key, as the audit trail shows it.
pub const BOOTSTRAP_ACTOR: &str = "bootstrap";

/// Turns bearer secrets into principals.
pub struct Authenticator {
    store: Arc<dyn Store>,
    bootstrap_hash: Option<String>,
    /// Keys found recently, by the hash of their secret. Dropped when any key
    /// of a tenant is revoked (on every replica, through the change feed) and
    /// after `KEY_CACHE_TTL` in any case. Unknown secrets are never cached.
    keys: moka::sync::Cache<String, ApiKey>,
    /// Whether revocations elsewhere reach this replica; the key cache is
    /// bypassed while they may not.
    changes: Arc<Changes>,
}

/// How long a key found in the store is trusted without reading it again.
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How many keys are cached at most.
const KEY_CACHE_SIZE: u64 = 10_000;

/// How stale `last_use_time` may get before a use writes it again.
const LAST_USE_RESOLUTION_SECONDS: i64 = 60;

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, bootstrap: Option<&Secret>, changes: Arc<Changes>) -> Self {
        Self {
            changes,
            store,
            bootstrap_hash: bootstrap.map(Secret::hash),
            keys: moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_SIZE)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
        }
    }

    /// Drops cached keys when a change may have revoked or removed some,
    /// for as long as the feed runs.
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut feed = self.changes.subscribe();
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = feed.recv().await;
                let Some(me) = me.upgrade() else { return };
                match change {
                    Ok(Change::Keys { .. } | Change::Tenant { .. } | Change::Everything)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        me.keys.invalidate_all()
                    }
                    Ok(Change::Services { .. }) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Checks the `authorization` header. The principal's `method` is left
    /// empty for the layer to fill in. Every bearer token costs one hash
    /// and, unless it is a key used in the last `KEY_CACHE_TTL`, one indexed
    /// lookup by that hash, whether or not a key has it: only the holder of
    /// a valid secret can hit the cache, so the timing of an answer to a
    /// guessed secret does not tell whether some key exists.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, Error> {
        let Some(header) = header else {
            return Err(Error::Unauthenticated(
                "missing `authorization: Bearer <API key>` metadata".into(),
            ));
        };
        let Some(token) = header.strip_prefix("Bearer ") else {
            return Err(Error::Unauthenticated(
                "the authorization metadata must be `Bearer <API key>`".into(),
            ));
        };
        let hash = hash_secret(token.trim());
        if let Some(bootstrap) = &self.bootstrap_hash
            && constant_time_eq(hash.as_bytes(), bootstrap.as_bytes())
        {
            return Ok(Principal {
                tenant: None,
                role: Role::PlatformAdmin,
                key: BOOTSTRAP_ACTOR.into(),
                method: "",
            });
        }
        let cached = self
            .changes
            .is_live()
            .then(|| self.keys.get(&hash))
            .flatten();
        let found = match cached {
            Some(key) => Some(key),
            None => {
                let mut tx = self.store.begin(None, Access::Read).await?;
                let found = tx.find_api_key(&hash).await?;
                drop(tx);
                if let Some(key) = &found {
                    self.keys.insert(hash.clone(), key.clone());
                }
                found
            }
        };
        let now = Utc::now();
        let key = match found {
            Some(key) if Secret::is_well_formed(token.trim()) && key.is_usable(now) => key,
            _ => {
                return Err(Error::Unauthenticated(
                    "unknown, revoked or expired API key".into(),
                ));
            }
        };
        let stale = key
            .last_use_time
            .is_none_or(|t| now - t > ChronoDuration::seconds(LAST_USE_RESOLUTION_SECONDS));
        if stale {
            let mut used = key.clone();
            used.last_use_time = Some(now);
            self.keys.insert(hash, used);
            self.record_use(&key.tenant, &key.id, now);
        }
        Ok(Principal {
            tenant: Some(key.tenant.clone()),
            role: key.role,
            key: key.name(),
            method: "",
        })
    }

    /// Updates `last_use_time` in the background; a failure only costs accuracy.
    fn record_use(&self, tenant: &Id, id: &Id, now: chrono::DateTime<Utc>) {
        let store = self.store.clone();
        let (tenant, id) = (tenant.clone(), id.clone());
        tokio::spawn(async move {
            let result: Result<(), Error> = async {
                let mut tx = store.begin(Some(&tenant), Access::Write).await?;
                if let Some(mut key) = tx.get_api_key_for_update(&tenant, &id).await? {
                    key.last_use_time = Some(now);
                    tx.update_api_key(&key).await?;
                }
                tx.commit().await
            }
            .await;
            if let Err(error) = result {
                warn!(%tenant, key = %id, %error, "could not record an API key's last use");
            }
        });
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tower layer that authenticates and authorizes every `accord.v1` call.
/// Health and reflection are open.
#[derive(Clone)]
pub struct AuthenticateLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthenticateLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        Self { authenticator }
    }
}

impl<S> tower::Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticate {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Authenticate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        if !path.starts_with("/accord.") {
            return Box::pin(self.inner.call(request));
        }
        // The ready service handles this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut principal = match authenticator.authenticate(header.as_deref()).await {
                Ok(p) => p,
                Err(error) => return Ok(tonic::Status::from(error).into_http()),
            };
            let Some((method, roles)) = methods::entry(&path) else {
                let error =
                    Error::PermissionDenied(format!("{path} is not in the authorization table"));
                return Ok(tonic::Status::from(error).into_http());
            };
            if !roles.contains(&principal.role) {
                let error = Error::PermissionDenied(format!(
                    "role {} may not call {path}",
                    principal.role.as_str()
                ));
                return Ok(tonic::Status::from(error).into_http());
            }
            principal.method = method;
            request.extensions_mut().insert(principal);
            inner.call(request).await
        })
    }
}
