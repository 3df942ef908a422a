//! The keys a tenant can be looked up by. Cache keys (L1 and Redis) are built only from [`LookupKey`], so every
//! cache key names its kind and two kinds can never collide.

use std::fmt;

use super::api_key::ApiKeyHash;
use super::{MerchantId, Slug, TenantId};

#[derive(Clone, PartialEq, Eq, Hash)]
pub enum LookupKey {
    Id(TenantId),
    Slug(Slug),
    ClerkOrg(String),
    SallaMerchant(MerchantId),
    /// A lowercase host name from `tenant_domains`.
    Domain(String),
    ApiKey(ApiKeyHash),
}

impl LookupKey {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Id(_) => "id",
            Self::Slug(_) => "slug",
            Self::ClerkOrg(_) => "clerk_org",
            Self::SallaMerchant(_) => "salla_merchant",
            Self::Domain(_) => "domain",
            Self::ApiKey(_) => "api_key",
        }
    }

    /// The Redis key suffix: `tenant:v1:<kind>:<value>` (v1: bump when the cached JSON changes shape).
    pub fn cache_key(&self) -> String {
        let value = match self {
            Self::Id(id) => id.to_string(),
            Self::Slug(slug) => slug.to_string(),
            Self::ClerkOrg(org) => org.clone(),
            Self::SallaMerchant(id) => id.to_string(),
            Self::Domain(domain) => domain.clone(),
            Self::ApiKey(hash) => hash.to_hex(),
        };
        format!("tenant:v1:{}:{value}", self.kind())
    }

    /// The key a [`Self::cache_key`] string names; `None` for anything else (a malformed or foreign message).
    pub fn from_cache_key(rendered: &str) -> Option<Self> {
        let rest = rendered.strip_prefix("tenant:v1:")?;
        let (kind, value) = rest.split_once(':')?;
        Some(match kind {
            "id" => Self::Id(value.parse().ok()?),
            "slug" => Self::Slug(Slug::parse(value).ok()?),
            "clerk_org" => Self::ClerkOrg(value.to_owned()),
            "salla_merchant" => Self::SallaMerchant(value.parse().ok()?),
            "domain" => Self::Domain(value.to_owned()),
            "api_key" => {
                let bytes: [u8; 32] = hex::decode(value).ok()?.try_into().ok()?;
                Self::ApiKey(ApiKeyHash(bytes))
            }
            _ => return None,
        })
    }

    /// The keys under which `tenant` is certainly cached, known from its row alone (domains and API keys are
    /// found through the per-tenant index instead).
    pub fn intrinsic(tenant: &super::Tenant) -> Vec<LookupKey> {
        let mut keys = vec![Self::Id(tenant.id), Self::Slug(tenant.slug.clone())];
        if let Some(org) = &tenant.clerk_org_id {
            keys.push(Self::ClerkOrg(org.clone()));
        }
        if let Some(merchant) = tenant.salla_merchant_id {
            keys.push(Self::SallaMerchant(merchant));
        }
        keys
    }
}

impl fmt::Debug for LookupKey {
    // API key hashes are shortened (see ApiKeyHash's Debug); the rest is not secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(hash) => write!(f, "api_key:{hash:?}"),
            other => f.write_str(&other.cache_key()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_name_their_kind() {
        let slug = LookupKey::Slug(Slug::parse("acme").unwrap());
        let org = LookupKey::ClerkOrg("acme".into());
        assert_ne!(slug.cache_key(), org.cache_key());
        assert_eq!(slug.cache_key(), "tenant:v1:slug:acme");
        assert_eq!(
            LookupKey::SallaMerchant(MerchantId::new(42)).cache_key(),
            "tenant:v1:salla_merchant:42"
        );
    }

    #[test]
    fn rendered_cache_keys_parse_back() {
        for key in [
            LookupKey::Slug(Slug::parse("acme").unwrap()),
            LookupKey::ClerkOrg("org_2g7np7".into()),
            LookupKey::Id(TenantId::new()),
            LookupKey::SallaMerchant(MerchantId::new(42)),
            LookupKey::Domain("crm.acme.sa".into()),
            LookupKey::ApiKey(ApiKeyHash::of("wsl_x")),
        ] {
            assert!(
                LookupKey::from_cache_key(&key.cache_key()) == Some(key.clone()),
                "{key:?}"
            );
        }
        assert!(LookupKey::from_cache_key("tenant:v1:nope:1").is_none());
        assert!(LookupKey::from_cache_key("tenant:v1:slug:Not A Slug").is_none());
    }
}
