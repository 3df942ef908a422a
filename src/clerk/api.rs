//! Clerk Backend API client (`../shared/reference/clerk.md` §3–§4): the calls provisioning needs, each
//! idempotent by design (look up before create; "already exists" answers are success), with a per-call
//! timeout, bounded retries with exponential backoff and jitter on 5xx and network errors, and 429
//! `Retry-After` honoured.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ClerkConfig, Secret};
use crate::outbound::{Failure, RetryPolicy, retry_after};

/// Longest `Retry-After` we are willing to sleep inside one call; longer waits fail the call (the job
/// retries later instead of holding a worker slot).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The wait a 429 without `Retry-After` reports.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ClerkApiError {
    #[error("Clerk API unreachable: {0}")]
    Transport(String),
    #[error("Clerk API answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("Clerk API rate limit: retry after {0:?}")]
    RateLimited(Duration),
    #[error("unexpected Clerk API answer: {0}")]
    Decode(String),
}

impl ClerkApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The instance does not use organization slugs (403 `organization_slugs_disabled`).
    pub fn is_slugs_disabled(&self) -> bool {
        self.code() == Some("organization_slugs_disabled")
    }

    /// The instance requires an identifier we cannot give (an email address) for new users: 422
    /// `form_param_missing` (e.g. naming `email_address`), so a user known only by an external id is refused.
    pub fn is_identifier_required(&self) -> bool {
        matches!(self, Self::Api { status: 422, code, .. } if code == "form_param_missing")
    }

    /// The instance requires a password for new users (422 `form_data_missing` naming `password`: password is
    /// a required sign-in method, so `skip_password_requirement` is refused).
    pub fn is_password_required(&self) -> bool {
        matches!(self, Self::Api { code, message, .. }
            if code == "form_data_missing" && message.contains("password"))
    }
}

/// Why a user could not be created without a password.
pub const PASSWORD_REQUIRED_HELP: &str = "this Clerk instance requires a password for new users (Dashboard → \
     User & authentication → Password is a required sign-in method)";

#[derive(Debug, Clone, Deserialize)]
pub struct ClerkUser {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    #[serde(default)]
    pub email_addresses: Vec<ClerkEmail>,
}

/// One of a user's email addresses.
#[derive(Debug, Clone, Deserialize)]
pub struct ClerkEmail {
    #[serde(default)]
    pub id: Option<String>,
    pub email_address: String,
    #[serde(default)]
    pub verification: Option<ClerkVerification>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClerkVerification {
    #[serde(default)]
    pub status: Option<String>,
}

impl ClerkUser {
    /// The user's primary email address (the first one when none is marked primary), unless Clerk says it is
    /// not verified: an address nobody proved to own must not become a tenant's owner email.
    pub fn primary_email(&self) -> Option<&str> {
        let primary = self
            .email_addresses
            .iter()
            .find(|e| e.id.is_some() && e.id == self.primary_email_address_id)
            .or_else(|| self.email_addresses.first())?;
        let unverified = primary
            .verification
            .as_ref()
            .and_then(|v| v.status.as_deref())
            .is_some_and(|status| status != "verified");
        (!unverified).then_some(primary.email_address.as_str())
    }
}

/// A sign-in token (`POST /sign_in_tokens`): `token` is the ticket clerk-js signs in with (`__clerk_ticket`).
#[derive(Clone, Deserialize)]
pub struct SignInToken {
    pub id: String,
    pub user_id: String,
    pub token: String,
    #[serde(default)]
    pub status: Option<String>,
}

impl std::fmt::Debug for SignInToken {
    // The token signs its user in: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInToken")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("token", &"[redacted]")
            .field("status", &self.status)
            .finish()
    }
}

/// A user's membership, with its organization (`GET /users/{id}/organization_memberships`).
#[derive(Debug, Clone, Deserialize)]
pub struct UserMembership {
    pub organization: ClerkOrganization,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClerkOrganization {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub private_metadata: Value,
}

/// A Clerk error body: `{errors: [{message, long_message, code}]}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    long_message: Option<String>,
}

#[derive(Clone)]
pub struct ClerkApi {
    client: reqwest::Client,
    base: String,
    secret: Secret,
    version: String,
    retry: RetryPolicy,
}

impl ClerkApi {
    /// `client` must carry the request timeout (`clerk.request_timeout_secs`).
    pub fn new(config: &ClerkConfig, client: reqwest::Client) -> Self {
        Self {
            client,
            base: config.api_url.trim_end_matches('/').to_owned(),
            secret: config.secret_key.clone(),
            version: config.api_version.clone(),
            retry: RetryPolicy::new(config.max_retries, MAX_RETRY_AFTER),
        }
    }

    /// One call with retries. `Ok(None)` for 404 (callers decide whether that is fine).
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClerkApiError> {
        let mut url = url::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ClerkApiError::Transport(format!("bad Clerk API URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        crate::outbound::with_retries(&self.retry, "clerk", |_| {
            self.attempt(method.clone(), url.clone(), body)
        })
        .await
    }

    /// One request; 5xx, 429 and transport failures are retryable.
    async fn attempt(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
    ) -> Result<Option<Value>, Failure<ClerkApiError>> {
        let mut request = self
            .client
            .request(method, url)
            .bearer_auth(self.secret.expose())
            .header("Clerk-API-Version", &self.version);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = std::time::Instant::now();
        let result = match request.send().await {
            Err(error) => Err(Failure::Retryable {
                error: ClerkApiError::Transport(error.without_url().to_string()),
                retry_after: None,
            }),
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                let text = response.text().await.unwrap_or_default();
                match status {
                    s if s.is_success() => serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|e| Failure::Final(ClerkApiError::Decode(e.to_string()))),
                    StatusCode::NOT_FOUND => Ok(None),
                    StatusCode::TOO_MANY_REQUESTS => Err(Failure::Retryable {
                        error: ClerkApiError::RateLimited(
                            retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
                        ),
                        retry_after,
                    }),
                    s if s.is_server_error() => Err(Failure::Retryable {
                        error: api_error(s, &text),
                        retry_after: None,
                    }),
                    s => Err(Failure::Final(api_error(s, &text))),
                }
            }
        };
        let outcome_label = match &result {
            Ok(_) => "ok",
            Err(Failure::Retryable {
                error: ClerkApiError::RateLimited(_),
                ..
            }) => "rate_limited",
            Err(_) => "error",
        };
        metrics::counter!("upstream_requests_total", "upstream" => "clerk", "outcome" => outcome_label)
            .increment(1);
        metrics::histogram!("upstream_request_duration_seconds", "upstream" => "clerk")
            .record(started.elapsed().as_secs_f64());
        result
    }

    pub async fn find_user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<ClerkUser>, ClerkApiError> {
        let found = self
            .call(Method::GET, "/users", &[("email_address", email)], None)
            .await?
            .unwrap_or(Value::Array(vec![]));
        let users: Vec<ClerkUser> =
            serde_json::from_value(found).map_err(|e| ClerkApiError::Decode(e.to_string()))?;
        Ok(users.into_iter().next())
    }

    /// The user with `email`, created when missing (verified email; `external_id` links the user to us).
    /// Without `password` the user has none (they sign in with a code or reset): refused where password is a
    /// required sign-in method ([`ClerkApiError::is_password_required`]); then call again with one.
    pub async fn ensure_user(
        &self,
        email: &str,
        external_id: &str,
        password: Option<&str>,
    ) -> Result<ClerkUser, ClerkApiError> {
        if let Some(user) = self.find_user_by_email(email).await? {
            return Ok(user);
        }
        let body = match password {
            None => json!({
                "email_address": [email],
                "external_id": external_id,
                "skip_password_requirement": true,
            }),
            // A generated random password: strong and never breached, so Clerk's checks are skipped.
            Some(password) => json!({
                "email_address": [email],
                "external_id": external_id,
                "password": password,
                "skip_password_checks": true,
            }),
        };
        match self.call(Method::POST, "/users", &[], Some(&body)).await {
            Ok(Some(value)) => decode(value),
            Ok(None) => Err(ClerkApiError::Decode("404 creating a user".into())),
            // Created meanwhile (or by a previous attempt whose answer was lost): it exists, fetch it.
            Err(error) if error.code() == Some("form_identifier_exists") => {
                self.find_user_by_email(email).await?.ok_or(error)
            }
            Err(error) => Err(error),
        }
    }

    /// A user by id (`GET /users/{id}`); `None` when there is no such user.
    pub async fn get_user(&self, id: &str) -> Result<Option<ClerkUser>, ClerkApiError> {
        // Ids are `user_` + alphanumerics; anything else cannot name a user (and must not reach the path).
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Ok(None);
        }
        match self
            .call(Method::GET, &format!("/users/{id}"), &[], None)
            .await?
        {
            Some(value) => decode(value).map(Some),
            None => Ok(None),
        }
    }

    /// The user with `external_id`, if any (`GET /users?external_id=`).
    pub async fn find_user_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<ClerkUser>, ClerkApiError> {
        let found = self
            .call(Method::GET, "/users", &[("external_id", external_id)], None)
            .await?
            .unwrap_or(Value::Array(vec![]));
        let users: Vec<ClerkUser> =
            serde_json::from_value(found).map_err(|e| ClerkApiError::Decode(e.to_string()))?;
        Ok(users
            .into_iter()
            .find(|u| u.external_id.as_deref() == Some(external_id)))
    }

    /// The user known by `external_id` alone (no email, no password), created when missing. Refused where
    /// the instance requires an email address ([`ClerkApiError::is_identifier_required`]) or a password.
    pub async fn ensure_external_user(
        &self,
        external_id: &str,
        first_name: Option<&str>,
    ) -> Result<ClerkUser, ClerkApiError> {
        if let Some(user) = self.find_user_by_external_id(external_id).await? {
            return Ok(user);
        }
        let mut body = json!({
            "external_id": external_id,
            "skip_password_requirement": true,
        });
        if let Some(name) = first_name.map(str::trim).filter(|n| !n.is_empty()) {
            body["first_name"] = json!(name.chars().take(100).collect::<String>());
        }
        match self.call(Method::POST, "/users", &[], Some(&body)).await {
            Ok(Some(value)) => decode(value),
            Ok(None) => Err(ClerkApiError::Decode("404 creating a user".into())),
            Err(error) if error.code() == Some("form_identifier_exists") => self
                .find_user_by_external_id(external_id)
                .await?
                .ok_or(error),
            Err(error) => Err(error),
        }
    }

    /// A single-use sign-in token for `user`, valid `expires_in_seconds` (`POST /sign_in_tokens`).
    pub async fn create_sign_in_token(
        &self,
        user: &str,
        expires_in_seconds: u64,
    ) -> Result<SignInToken, ClerkApiError> {
        let body = json!({ "user_id": user, "expires_in_seconds": expires_in_seconds });
        match self
            .call(Method::POST, "/sign_in_tokens", &[], Some(&body))
            .await?
        {
            Some(value) => decode(value),
            None => Err(ClerkApiError::Api {
                status: 404,
                code: "resource_not_found".into(),
                message: format!("user {user} not found"),
            }),
        }
    }

    /// An organization by id or slug.
    pub async fn get_organization(
        &self,
        id_or_slug: &str,
    ) -> Result<Option<ClerkOrganization>, ClerkApiError> {
        match self
            .call(
                Method::GET,
                &format!("/organizations/{id_or_slug}"),
                &[],
                None,
            )
            .await?
        {
            Some(value) => decode(value).map(Some),
            None => Ok(None),
        }
    }

    /// Creates an organization; `created_by` becomes its admin (Clerk adds the membership itself). `slug` must
    /// be `None` where the instance disables slugs ([`ClerkApiError::is_slugs_disabled`]).
    pub async fn create_organization(
        &self,
        name: &str,
        slug: Option<&str>,
        created_by: &str,
        private_metadata: &Value,
    ) -> Result<ClerkOrganization, ClerkApiError> {
        let mut body = json!({
            "name": name,
            "created_by": created_by,
            "private_metadata": private_metadata,
        });
        if let Some(slug) = slug {
            body["slug"] = json!(slug);
        }
        match self
            .call(Method::POST, "/organizations", &[], Some(&body))
            .await?
        {
            Some(value) => decode(value),
            None => Err(ClerkApiError::Decode("404 creating an organization".into())),
        }
    }

    /// Adds `user` to `org` with `role` (e.g. `org:admin`); already being a member is success.
    pub async fn add_membership(
        &self,
        org: &str,
        user: &str,
        role: &str,
    ) -> Result<(), ClerkApiError> {
        let body = json!({ "user_id": user, "role": role });
        match self
            .call(
                Method::POST,
                &format!("/organizations/{org}/memberships"),
                &[],
                Some(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("already_a_member_in_organization") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Deep-merges `private_metadata` into the organization's (the metadata endpoint, which every API version
    /// keeps).
    pub async fn merge_org_metadata(
        &self,
        org: &str,
        private_metadata: &Value,
    ) -> Result<(), ClerkApiError> {
        let body = json!({ "private_metadata": private_metadata });
        self.call(
            Method::PATCH,
            &format!("/organizations/{org}/metadata"),
            &[],
            Some(&body),
        )
        .await?
        .ok_or_else(|| ClerkApiError::Api {
            status: 404,
            code: "resource_not_found".into(),
            message: format!("organization {org} not found"),
        })
        .map(drop)
    }

    /// Deletes an organization (with its memberships and invitations); one that is already gone is success.
    pub async fn delete_organization(&self, org: &str) -> Result<(), ClerkApiError> {
        self.call(Method::DELETE, &format!("/organizations/{org}"), &[], None)
            .await
            .map(drop)
    }

    /// Deletes a user; one that is already gone is success.
    pub async fn delete_user(&self, user: &str) -> Result<(), ClerkApiError> {
        self.call(Method::DELETE, &format!("/users/{user}"), &[], None)
            .await
            .map(drop)
    }

    /// Every organization `user` belongs to (with each organization's metadata). A user that is gone has none.
    pub async fn user_memberships(&self, user: &str) -> Result<Vec<UserMembership>, ClerkApiError> {
        self.paged(&format!("/users/{user}/organization_memberships"))
            .await
    }

    /// The user ids of `org`'s members. An organization that is gone has none.
    pub async fn organization_member_ids(&self, org: &str) -> Result<Vec<String>, ClerkApiError> {
        let members: Vec<Value> = self
            .paged(&format!("/organizations/{org}/memberships"))
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| m["public_user_data"]["user_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// Every item of a paginated list (`{data, total_count}`, `limit`/`offset`); a 404 is an empty list.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ClerkApiError> {
        const PAGE: usize = 100;
        let mut items = Vec::new();
        loop {
            let offset = items.len().to_string();
            let Some(page) = self
                .call(
                    Method::GET,
                    path,
                    &[("limit", "100"), ("offset", offset.as_str())],
                    None,
                )
                .await?
            else {
                return Ok(items);
            };
            let data: Vec<T> = decode(page["data"].clone())?;
            let total = page["total_count"].as_u64().unwrap_or(0) as usize;
            let fetched = data.len();
            items.extend(data);
            if fetched < PAGE || items.len() >= total {
                return Ok(items);
            }
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ClerkApiError> {
    serde_json::from_value(value).map_err(|e| ClerkApiError::Decode(e.to_string()))
}

fn api_error(status: StatusCode, text: &str) -> ClerkApiError {
    let first = serde_json::from_str::<ErrorBody>(text)
        .ok()
        .and_then(|body| body.errors.into_iter().next());
    match first {
        Some(item) => ClerkApiError::Api {
            status: status.as_u16(),
            code: item.code,
            message: item.long_message.unwrap_or(item.message),
        },
        None => ClerkApiError::Api {
            status: status.as_u16(),
            code: String::new(),
            message: text.chars().take(200).collect(),
        },
    }
}
