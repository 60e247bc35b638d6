//! Authentication and authorization. Every `accord.v1` call carries
//! `authorization: Bearer <secret>`; the `Authenticate` layer turns it into a
//! `Principal` (or UNAUTHENTICATED), checks the method's roles in the one
//! table (`methods.rs`), and hands the principal to the API, which checks the
//! tenant of every name the request carries. Keys are read through the
//! API key service and cached here; the API never sees a secret.

pub mod methods;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures_util::future::BoxFuture;
use tracing::warn;

use crate::domain::api_key::{ApiKey, Role, Secret, hash_secret};
use crate::domain::audit::Caller;
use crate::domain::names::Id;
use crate::error::Error;
use crate::service::Registry;
use crate::service::changes::{Changes, KeyStamp, KeysSeen};

/// Who is calling: the key's tenant (none for the bootstrap key), its role and
/// its name, and the method the layer let it call, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: Option<Id>,
    pub role: Role,
    pub key: String,
    pub method: &'static str,
    /// The hash of the key's secret, so that a call outliving its first
    /// check (a watch) can check the key again (`Authenticator::recheck`);
    /// none for the bootstrap key, which is neither stored nor revocable.
    pub key_hash: Option<String>,
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

/// The principal of `request`, if it may act on `tenant`
/// (`Principal::check_tenant`).
pub fn authorize<'a, T>(
    request: &'a tonic::Request<T>,
    tenant: &Id,
) -> Result<&'a Principal, Error> {
    let principal = principal(request)?;
    principal.check_tenant(tenant)?;
    Ok(principal)
}

/// The key name of the bootstrap key, as the audit trail shows it.
pub const BOOTSTRAP_ACTOR: &str = "bootstrap";

/// Turns bearer secrets into principals.
pub struct Authenticator {
    registry: Arc<Registry>,
    bootstrap_hash: Option<String>,
    keys: KeyCache,
}

/// How long a key read from the store is trusted without reading it again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// How many keys are cached at most.
const KEY_CACHE_SIZE: u64 = 10_000;

/// How stale `last_use_time` may get before a use writes it again.
const LAST_USE_RESOLUTION_SECONDS: i64 = 60;

impl Authenticator {
    pub fn new(registry: Arc<Registry>, bootstrap: Option<&Secret>) -> Self {
        let changes = registry.changes().clone();
        Self {
            registry,
            bootstrap_hash: bootstrap.map(Secret::hash),
            keys: KeyCache::new(changes, KEY_CACHE_TTL),
        }
    }

    /// Checks the `authorization` header. The principal's `method` is left
    /// empty for the layer to fill in. Every bearer token costs one hash
    /// and, unless it is a key read in the last `KEY_CACHE_TTL` and not
    /// changed since, one indexed lookup by that hash, whether or not a key
    /// has it: only the holder of a valid secret can hit the cache, so the
    /// timing of an answer to a guessed secret does not tell whether some
    /// key exists.
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
                key_hash: None,
            });
        }
        let found = self.find(&hash).await?;
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
            self.keys.record_use(&hash, now);
            self.record_use(&key.tenant, &key.id, now);
        }
        Ok(Principal {
            tenant: Some(key.tenant.clone()),
            role: key.role,
            key: key.name(),
            method: "",
            key_hash: Some(hash),
        })
    }

    /// Checks again that `principal`'s key authenticates and that `tenant`,
    /// which it acts on, still exists, for calls that outlive their first
    /// check (watches). Returns when the key expires. A revoked or expired
    /// key is UNAUTHENTICATED; a deleted tenant (whose keys went with it) is
    /// NOT_FOUND. Goes through the key cache, so it reads the store only
    /// after a change that may affect keys. The bootstrap key is not stored
    /// and cannot be revoked: only its tenant is checked.
    pub async fn recheck(
        &self,
        principal: &Principal,
        tenant: &Id,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        if let Some(hash) = &principal.key_hash
            && let Some(key) = self.find(hash).await?
        {
            let now = Utc::now();
            return match (key.revoke_time, key.expire_time) {
                (Some(_), _) => Err(Error::Unauthenticated(format!(
                    "API key {} was revoked",
                    key.name()
                ))),
                (None, Some(at)) if at <= now => Err(Error::Unauthenticated(format!(
                    "API key {} expired at {}",
                    key.name(),
                    at.to_rfc3339()
                ))),
                (None, expire_time) => Ok(expire_time),
            };
        }
        self.registry.tenants().get(tenant).await?;
        match principal.key_hash {
            Some(_) => Err(Error::Unauthenticated(format!(
                "API key {} no longer exists",
                principal.key
            ))),
            None => Ok(None),
        }
    }

    /// The key with this hash: from the cache, or read from the store (and
    /// cached when found).
    async fn find(&self, hash: &str) -> Result<Option<ApiKey>, Error> {
        if let Some(key) = self.keys.get(hash) {
            return Ok(Some(key));
        }
        let read = self.keys.read_started();
        let found = self.registry.api_keys().find_by_secret_hash(hash).await?;
        if let Some(key) = &found {
            self.keys.insert(hash, key.clone(), read);
        }
        Ok(found)
    }

    /// Updates `last_use_time` in the background; a failure only costs accuracy.
    fn record_use(&self, tenant: &Id, id: &Id, now: chrono::DateTime<Utc>) {
        let registry = self.registry.clone();
        let (tenant, id) = (tenant.clone(), id.clone());
        tokio::spawn(async move {
            let result = registry.api_keys().record_use(&tenant, &id, now).await;
            if let Err(error) = result {
                warn!(%tenant, key = %id, %error, "could not record an API key's last use");
            }
        });
    }
}

/// Keys found recently, by the hash of their secret. An entry is trusted
/// while the key generations it was read under are current (a revocation or
/// a tenant change on any replica bumps them, through the change feed) and
/// for at most `ttl` from when it was read. Unknown secrets are never cached;
/// while other replicas' changes may not reach this one, the cache is
/// bypassed.
struct KeyCache {
    entries: moka::sync::Cache<String, CachedKey>,
    changes: Arc<Changes>,
    ttl: Duration,
}

#[derive(Debug, Clone)]
struct CachedKey {
    key: ApiKey,
    stamp: KeyStamp,
    /// When the read that found it began; recording a use keeps it.
    read_at: Instant,
}

/// Taken before reading a key from the store.
#[derive(Debug, Clone, Copy)]
struct ReadStarted {
    seen: KeysSeen,
    at: Instant,
}

impl KeyCache {
    fn new(changes: Arc<Changes>, ttl: Duration) -> Self {
        Self {
            // moka's time-to-live only frees memory; re-inserting restarts
            // it, so trust is bounded by `read_at` instead.
            entries: moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_SIZE)
                .time_to_live(ttl)
                .build(),
            changes,
            ttl,
        }
    }

    fn get(&self, hash: &str) -> Option<ApiKey> {
        if !self.changes.is_live() {
            return None;
        }
        let entry = self.entries.get(hash)?;
        (entry.read_at.elapsed() < self.ttl
            && self.changes.is_key_current(entry.stamp, &entry.key.tenant))
        .then_some(entry.key)
    }

    /// To take before the store read whose result goes to `insert`, so that
    /// a change applied meanwhile keeps it out.
    fn read_started(&self) -> ReadStarted {
        ReadStarted {
            seen: self.changes.keys_seen(),
            at: Instant::now(),
        }
    }

    fn insert(&self, hash: &str, key: ApiKey, read: ReadStarted) {
        if let Some(stamp) = self.changes.key_stamp(read.seen, &key.tenant) {
            let entry = CachedKey {
                key,
                stamp,
                read_at: read.at,
            };
            self.entries.insert(hash.to_string(), entry);
        }
    }

    /// Notes a use in the cached copy, so the next use need not write it,
    /// without extending how long the copy is trusted. Racing an insert can
    /// only put back an older stamp, which is a miss.
    fn record_use(&self, hash: &str, at: DateTime<Utc>) {
        if let Some(mut entry) = self.entries.get(hash) {
            entry.key.last_use_time = Some(at);
            self.entries.insert(hash.to_string(), entry);
        }
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
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

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
            if let Some(tenant) = &principal.tenant {
                // The call's server span (`crate::server_span`), if it has one.
                tracing::Span::current().record("accord.tenant", tenant.as_str());
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::ApiKeyFields;
    use crate::domain::changes::Change;
    use crate::error::Violations;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    fn key(tenant: &str) -> ApiKey {
        let fields = ApiKeyFields {
            role: Some(Role::Reader),
            ..Default::default()
        };
        let mut v = Violations::new();
        ApiKey::new(&id(tenant), id("reader"), fields, Utc::now(), &mut v)
            .expect("a valid key")
            .0
    }

    fn cache() -> (Arc<Changes>, KeyCache) {
        let changes = Arc::new(Changes::default());
        (changes.clone(), KeyCache::new(changes, KEY_CACHE_TTL))
    }

    #[test]
    fn a_key_read_before_a_revocation_and_cached_after_it_is_a_miss() {
        let (changes, cache) = cache();
        let key = key("t");
        // A lookup starts reading and finds the key still valid...
        let read = cache.read_started();
        // ...the revocation commits and is applied meanwhile...
        changes.apply(Change::Keys { tenant: id("t") });
        // ...and the lookup caches what it read.
        cache.insert("h", key.clone(), read);
        assert_eq!(cache.get("h"), None, "the next lookup must read the store");

        let read = cache.read_started();
        cache.insert("h", key.clone(), read);
        assert_eq!(cache.get("h"), Some(key));
    }

    #[test]
    fn a_key_cached_before_a_change_is_a_miss_after_it() {
        for change in [
            Change::Keys { tenant: id("t") },
            Change::Tenant { tenant: id("t") },
            Change::Everything,
        ] {
            let (changes, cache) = cache();
            cache.insert("h", key("t"), cache.read_started());
            assert!(cache.get("h").is_some());
            changes.apply(change.clone());
            assert_eq!(cache.get("h"), None, "after {change:?}");
        }
    }

    #[test]
    fn another_tenants_key_change_keeps_a_cached_key() {
        let (changes, cache) = cache();
        cache.insert("h", key("t"), cache.read_started());
        changes.apply(Change::Keys {
            tenant: id("other"),
        });
        assert!(cache.get("h").is_some());
    }

    #[test]
    fn a_key_is_trusted_for_the_ttl_from_its_read_however_often_it_is_used() {
        let (_, cache) = cache();
        let long_ago = ReadStarted {
            at: Instant::now() - KEY_CACHE_TTL,
            ..cache.read_started()
        };
        cache.insert("old", key("t"), long_ago);
        assert_eq!(cache.get("old"), None);

        let read = cache.read_started();
        cache.insert("h", key("t"), read);
        cache.record_use("h", Utc::now());
        let entry = cache.entries.get("h").expect("cached");
        assert!(entry.key.last_use_time.is_some());
        assert_eq!(entry.read_at, read.at, "a use must not extend the trust");
    }

    #[test]
    fn nothing_is_served_from_the_cache_while_changes_may_be_missed() {
        let (changes, cache) = cache();
        cache.insert("h", key("t"), cache.read_started());
        changes.set_live(false);
        assert_eq!(cache.get("h"), None);
        // Read while changes were missed: stale once they flow again.
        cache.insert("h", key("t"), cache.read_started());
        changes.set_live(true);
        assert_eq!(cache.get("h"), None);
    }
}
