use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

const HEADER: &str = "x-admin-key";

/// Proof that the request carries one of the configured admin keys. Compared in constant time against every
/// key (several are allowed so keys can rotate without downtime).
pub struct AdminAuth {
    /// Names the key in the audit log without revealing it: `admin:` + 8 hex digits of its SHA-256.
    pub actor: String,
    /// Where the request came from (request id, client IP, user agent), for the audit log.
    pub origin: crate::audit::Origin,
}

impl AdminAuth {
    /// The operator as the lifecycle services record them (audit actor, request id, IP, user agent).
    pub(crate) fn lifecycle_actor(
        &self,
        request_id: Option<String>,
    ) -> crate::provisioning::lifecycle::Actor {
        crate::provisioning::lifecycle::Actor {
            name: self.actor.clone(),
            request_id,
            ip: self.origin.ip,
            user_agent: self.origin.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let keys = &state.config().admin.api_keys;
        if keys.is_empty() {
            return Err(ApiError::forbidden(
                "admin_api_disabled",
                "The admin API is disabled: no admin.api_keys are configured.",
            ));
        }
        let Some(given) = parts.headers.get(HEADER) else {
            return Err(ApiError::Unauthorized("Missing X-Admin-Key header.".into()));
        };
        let given = given.as_bytes();
        // Check every key, without stopping at a match, so timing says nothing about which key matched.
        let matched = keys.iter().fold(subtle::Choice::from(0), |acc, key| {
            acc | key.expose().as_bytes().ct_eq(given)
        });
        if bool::from(matched) {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(given);
            Ok(AdminAuth {
                actor: format!("admin:{}", hex::encode(&digest[..4])),
                origin: crate::audit::Origin::of(parts, state.trusted_proxies()),
            })
        } else {
            Err(ApiError::Unauthorized("Invalid X-Admin-Key.".into()))
        }
    }
}
