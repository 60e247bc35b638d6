//! API keys: a role in one tenant, a secret shown once and stored as a hash.
//! Secrets carry the `acc_` prefix so scanners can recognise a leaked one.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::fields::{Meta, validate_display_name};
use crate::domain::names::{Id, api_key_name};
use crate::error::Violations;

/// The prefix of every secret Accord issues.
pub const SECRET_PREFIX: &str = "acc_";
/// Characters after the prefix: 32 random bytes in unpadded base64url.
const SECRET_BODY_LEN: usize = 43;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
    Editor,
    Reader,
    Reporter,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "PLATFORM_ADMIN",
            Role::TenantAdmin => "TENANT_ADMIN",
            Role::Editor => "EDITOR",
            Role::Reader => "READER",
            Role::Reporter => "REPORTER",
        }
    }
}

/// A secret, kept out of logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new random secret.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Secret(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the text has the shape of a secret Accord issued.
    pub fn is_well_formed(text: &str) -> bool {
        text.strip_prefix(SECRET_PREFIX).is_some_and(|body| {
            body.len() == SECRET_BODY_LEN
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }

    /// What is stored: the SHA-256 of the secret. Secrets are 256 random bits,
    /// so a fast hash is enough; no one can search that space.
    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }

    /// The first characters, shown to recognise a key without revealing it.
    pub fn visible_prefix(&self) -> String {
        self.0.chars().take(SECRET_PREFIX.len() + 4).collect()
    }
}

pub fn hash_secret(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub tenant: Id,
    pub id: Id,
    pub display_name: String,
    pub role: Role,
    pub expire_time: Option<DateTime<Utc>>,
    pub last_use_time: Option<DateTime<Utc>>,
    pub revoke_time: Option<DateTime<Utc>>,
    pub secret_prefix: String,
    pub key_hash: String,
    pub meta: Meta,
}

#[derive(Debug, Clone, Default)]
pub struct ApiKeyFields {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub expire_time: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// A new key and its secret; `role` is required and cannot be
    /// PLATFORM_ADMIN, which only the bootstrap key holds.
    pub fn new(
        tenant: &Id,
        id: Id,
        fields: ApiKeyFields,
        now: DateTime<Utc>,
        v: &mut Violations,
    ) -> Option<(Self, Secret)> {
        match fields.role {
            None => v.add("api_key.role", "is required"),
            Some(Role::PlatformAdmin) => v.add(
                "api_key.role",
                "PLATFORM_ADMIN belongs to the bootstrap key only",
            ),
            Some(_) => {}
        }
        let display_name = fields.display_name.unwrap_or_default();
        validate_display_name(v, "api_key.display_name", &display_name);
        if let Some(expiry) = fields.expire_time
            && expiry <= now
        {
            v.add("api_key.expire_time", "must be in the future");
        }
        let role = fields.role.filter(|r| *r != Role::PlatformAdmin)?;
        let secret = Secret::generate();
        let key = ApiKey {
            tenant: tenant.clone(),
            id,
            display_name,
            role,
            expire_time: fields.expire_time,
            last_use_time: None,
            revoke_time: None,
            secret_prefix: secret.visible_prefix(),
            key_hash: secret.hash(),
            meta: Meta::new(now),
        };
        Some((key, secret))
    }

    pub fn name(&self) -> String {
        api_key_name(&self.tenant, &self.id)
    }

    /// Revokes the key at `now`. Revoking is final: revoking a revoked key
    /// changes nothing, and returns false.
    pub fn revoke(&mut self, now: DateTime<Utc>) -> bool {
        if self.revoke_time.is_some() {
            return false;
        }
        self.revoke_time = Some(now);
        self.meta.touch(now);
        true
    }

    /// Whether the key may be used at `now`: not revoked, not expired.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.revoke_time.is_none() && self.expire_time.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_well_formed_and_redacted() {
        let secret = Secret::generate();
        assert!(secret.expose().starts_with("acc_"));
        assert!(Secret::is_well_formed(secret.expose()));
        assert!(!Secret::is_well_formed("acc_short"));
        assert!(!Secret::is_well_formed(
            &secret.expose().replace("acc_", "xyz_")
        ));
        assert_ne!(Secret::generate(), secret);
        assert!(!format!("{secret:?}").contains(&secret.expose()[4..]));
        assert_eq!(secret.hash().len(), 64);
    }

    #[test]
    fn revoking_is_final_and_revoking_again_changes_nothing() {
        let t = Id::parse("t", "acme").unwrap();
        let fields = ApiKeyFields {
            role: Some(Role::Reader),
            ..Default::default()
        };
        let mut v = Violations::new();
        let (mut key, _) = ApiKey::new(&t, t.clone(), fields, Utc::now(), &mut v).unwrap();
        let now = Utc::now();
        assert!(key.is_usable(now));
        assert!(key.revoke(now));
        let revoked = key.clone();
        assert!(!key.is_usable(now));
        assert!(!key.revoke(now + chrono::Duration::seconds(1)));
        assert_eq!(key, revoked);
    }

    #[test]
    fn platform_admin_keys_cannot_be_created() {
        let t = Id::parse("t", "acme").unwrap();
        let mut v = Violations::new();
        let fields = ApiKeyFields {
            role: Some(Role::PlatformAdmin),
            ..Default::default()
        };
        assert!(ApiKey::new(&t, t.clone(), fields, Utc::now(), &mut v).is_none());
        assert!(!v.is_empty());
    }
}
