//! HTTP client of one Twenty server (shared/reference/twenty.md): GraphQL on `POST /metadata` (auth, workspace,
//! onboarding, roles, API keys, objects and fields) and `POST /graphql` (records), and the REST data API
//! (`/rest/*`). Every call has a timeout; idempotent calls are retried with backoff on 5xx and network errors;
//! throttling (HTTP 429, or GraphQL `LIMIT_REACHED`, §4.1) is retried after `Retry-After` whatever the call,
//! since a throttled request was not processed.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::documents::Document;
use crate::config::CrmConfig;
use crate::outbound::{self, ClientError, Failure, RetryPolicy, retry_after};

/// Longest throttling wait we sleep inside one call; longer ones fail the call (the job comes back later).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Which GraphQL endpoint a query goes to (§1.2): `/metadata` for auth, workspace, roles, API keys, onboarding
/// and the data model; `/graphql` for a workspace's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Metadata,
    Graphql,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Metadata => "/metadata",
            Self::Graphql => "/graphql",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TwentyError {
    #[error("Twenty unreachable during {operation}: {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },
    #[error("Twenty answered {status} to {operation}: {message}")]
    Http {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("Twenty throttled {operation} (retry after {retry_after:?})")]
    RateLimited {
        operation: &'static str,
        retry_after: Option<Duration>,
    },
    /// A GraphQL error: the first of `errors[]`, with `extensions.code` (empty when absent) and all of
    /// `extensions` for callers that look deeper (e.g. the metadata validation body).
    #[error("Twenty refused {operation}: {message} ({code})")]
    GraphQl {
        operation: &'static str,
        code: String,
        message: String,
        extensions: Value,
    },
    /// An object or field with that name exists already (either shape of §2.5, or "already exists").
    #[error("Twenty refused {operation}: already exists: {message}")]
    AlreadyExists {
        operation: &'static str,
        message: String,
    },
    #[error("unexpected answer from Twenty to {operation}: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },
    /// Introspection showed this Twenty lacks what we need.
    #[error(
        "this Twenty server lacks {0} (check the pinned Twenty version; shared/reference/twenty.md §5.3)"
    )]
    MissingCapability(String),
}

impl TwentyError {
    /// The GraphQL `extensions.code`, if this is a GraphQL error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::GraphQl { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the error's message contains `needle` (case-insensitive).
    pub fn message_contains(&self, needle: &str) -> bool {
        let message = match self {
            Self::GraphQl { message, .. }
            | Self::Http { message, .. }
            | Self::AlreadyExists { message, .. } => message,
            _ => return false,
        };
        message.to_lowercase().contains(&needle.to_lowercase())
    }

    /// Whether this is the instance's workspace cap refusing a new workspace (v2.30+: "Cannot create more
    /// than N workspaces without a valid enterprise key", an AuthException answered as FORBIDDEN). Never
    /// retried: the same instance will refuse again until its cap is raised.
    pub fn is_workspace_cap(&self) -> bool {
        self.message_contains("workspaces without a valid enterprise key")
    }

    /// Whether the server refused introspection to a caller without a workspace (production Twenty adds
    /// graphql-js's `NoSchemaIntrospectionCustomRule` for such requests).
    pub fn is_introspection_disabled(&self) -> bool {
        self.message_contains("introspection has been disabled")
    }

    /// Whether retrying later may help (network, 5xx, throttling), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::RateLimited { .. } => true,
            Self::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The "already exists" answers of the metadata API (§2.5, §4.2) as [`TwentyError::AlreadyExists`]:
    /// `CONFLICT` with "… already exists", `METADATA_VALIDATION_FAILED` whose body holds an
    /// `…_ALREADY_EXISTS` code, or any message matching "already exists". Other errors are returned as they are.
    pub fn into_already_exists(self) -> Self {
        let exists = match &self {
            Self::GraphQl {
                code,
                message,
                extensions,
                ..
            } => {
                code == "CONFLICT"
                    || holds_already_exists_code(extensions)
                    || message.to_lowercase().contains("already exists")
            }
            _ => false,
        };
        match self {
            Self::GraphQl {
                operation, message, ..
            } if exists => Self::AlreadyExists { operation, message },
            other => other,
        }
    }
}

/// Whether a (metadata validation) error body holds a `code` ending in `_ALREADY_EXISTS` anywhere.
fn holds_already_exists_code(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (key == "code"
                && value
                    .as_str()
                    .is_some_and(|c| c.ends_with("_ALREADY_EXISTS")))
                || holds_already_exists_code(value)
        }),
        Value::Array(items) => items.iter().any(holds_already_exists_code),
        _ => false,
    }
}

/// How one call may be retried and how long it may take.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// Repeating the call is harmless: retried on 5xx and network errors.
    pub idempotent: bool,
    /// A timeout other than `crm.request_timeout_secs` (e.g. `activateWorkspace`).
    pub timeout: Option<Duration>,
}

impl CallOptions {
    pub const IDEMPOTENT: Self = Self {
        idempotent: true,
        timeout: None,
    };
    pub const ONCE: Self = Self {
        idempotent: false,
        timeout: None,
    };
}

/// A Twenty server. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct TwentyClient {
    http: reqwest::Client,
    base: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for TwentyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwentyClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TwentyClient {
    /// The client of the instance at `base_url`, with `crm.request_timeout_secs` per call and
    /// `crm.max_retries`.
    pub fn new(base_url: &str, config: &CrmConfig) -> Result<Self, ClientError> {
        let http = outbound::client("Twenty", Duration::from_secs(config.request_timeout_secs))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            retry: RetryPolicy::new(config.max_retries, MAX_RETRY_AFTER),
        })
    }

    /// Twenty's base URL (no trailing slash): its `SERVER_URL`, the `origin` of sign-ins outside a workspace.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One of our documents (`documents`), to the endpoint it belongs to. Returns `data`.
    pub async fn document(
        &self,
        document: &Document,
        variables: Value,
        token: Option<&str>,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        self.graphql(
            document.endpoint,
            document.operation,
            document.text,
            variables,
            token,
            options,
        )
        .await
    }

    /// One GraphQL operation; `operation` is the root field (metrics label, error messages). Returns `data`.
    pub async fn graphql(
        &self,
        endpoint: Endpoint,
        operation: &'static str,
        query: &str,
        variables: Value,
        token: Option<&str>,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        let body = json!({ "query": query, "variables": variables });
        let url = format!("{}{}", self.base, endpoint.path());
        let answer = self
            .send(
                Method::POST,
                &url,
                &[],
                Some(&body),
                token,
                operation,
                options,
            )
            .await?;
        Ok(answer.get("data").cloned().unwrap_or(Value::Null))
    }

    /// An unauthenticated GET of a public endpoint (e.g. `/client-config`). Returns the JSON body.
    pub async fn get_public(&self, path: &str, options: CallOptions) -> Result<Value, TwentyError> {
        let url = format!("{}{path}", self.base);
        self.send(Method::GET, &url, &[], None, None, "client-config", options)
            .await
    }

    /// One REST call: `path` below `/rest` (e.g. `/batch/companies`). Returns the whole JSON body.
    pub async fn rest(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: &str,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        let url = format!("{}/rest{path}", self.base);
        self.send(method, &url, query, body, Some(token), "rest", options)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&str>,
        operation: &'static str,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        crate::outbound::with_retries(&self.retry, "twenty", |_| async {
            let started = Instant::now();
            let result = self
                .attempt(method.clone(), url, query, body, token, operation, options)
                .await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(TwentyError::RateLimited { .. }) => "rate_limited",
                Err(TwentyError::Transport { .. }) => "unreachable",
                Err(TwentyError::Http { status, .. }) if *status >= 500 => "server_error",
                Err(_) => "refused",
            };
            metrics::counter!("twenty_requests_total", "operation" => operation, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("twenty_request_duration_seconds", "operation" => operation)
                .record(started.elapsed().as_secs_f64());
            result.map_err(|error| match error {
                // A throttled request was not processed: retried whatever the call.
                TwentyError::RateLimited { retry_after, .. } => Failure::Retryable {
                    retry_after,
                    error,
                },
                error if options.idempotent && error.is_transient() => Failure::Retryable {
                    error,
                    retry_after: None,
                },
                error => Failure::Final(error),
            })
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        token: Option<&str>,
        operation: &'static str,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        let mut url = url::Url::parse(url).map_err(|e| TwentyError::Transport {
            operation,
            message: format!("bad Twenty URL: {e}"),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(timeout) = options.timeout {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            .map_err(|error| TwentyError::Transport {
                operation,
                message: error.without_url().to_string(),
            })?;
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|error| TwentyError::Transport {
                operation,
                message: error.without_url().to_string(),
            })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(TwentyError::RateLimited {
                operation,
                retry_after: wait,
            });
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        // GraphQL errors come with 200 or with 4xx/5xx depending on the version: the body decides.
        if let Some(error) = parsed
            .as_ref()
            .and_then(|body| graphql_error(body, operation, wait))
        {
            return match error {
                TwentyError::GraphQl { code, message, .. }
                    if status.is_server_error() || code == "INTERNAL_SERVER_ERROR" =>
                {
                    Err(TwentyError::Http {
                        operation,
                        status: status.as_u16().max(500),
                        message,
                    })
                }
                error => Err(error),
            };
        }
        if !status.is_success() {
            return Err(TwentyError::Http {
                operation,
                status: status.as_u16(),
                message: rest_error_message(parsed.as_ref(), &text),
            });
        }
        parsed.ok_or_else(|| TwentyError::Decode {
            operation,
            message: "the body is not JSON".into(),
        })
    }
}

/// The first GraphQL error of a body, mapped: `LIMIT_REACHED` is throttling.
fn graphql_error(
    body: &Value,
    operation: &'static str,
    retry_after: Option<Duration>,
) -> Option<TwentyError> {
    let first = body.get("errors")?.as_array()?.first()?;
    let extensions = first.get("extensions").cloned().unwrap_or(Value::Null);
    let code = extensions
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(500)
        .collect();
    if code == "LIMIT_REACHED" {
        return Some(TwentyError::RateLimited {
            operation,
            retry_after,
        });
    }
    Some(TwentyError::GraphQl {
        operation,
        code,
        message,
        extensions,
    })
}

/// A REST error's text: `messages[]` (§2.4) or `message`, else the start of the body.
fn rest_error_message(body: Option<&Value>, text: &str) -> String {
    let from_body = body.and_then(|body| {
        body.get("messages")
            .and_then(Value::as_array)
            .map(|messages| {
                messages
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .or_else(|| {
                body.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
    });
    from_body.unwrap_or_else(|| text.chars().take(200).collect())
}

/// The single key under a REST answer's `data` (§2.4 parsing rule).
pub fn rest_data(body: &Value) -> Option<&Value> {
    let data = body.get("data")?.as_object()?;
    if data.len() == 1 {
        data.values().next()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graphql(code: &str, message: &str, extensions: Value) -> TwentyError {
        TwentyError::GraphQl {
            operation: "createOneField",
            code: code.into(),
            message: message.into(),
            extensions,
        }
    }

    #[test]
    fn both_duplicate_shapes_and_the_message_are_already_exists() {
        let older = graphql(
            "CONFLICT",
            "Field already exists",
            json!({"code": "CONFLICT"}),
        );
        assert!(matches!(
            older.into_already_exists(),
            TwentyError::AlreadyExists { .. }
        ));
        let newer = graphql(
            "METADATA_VALIDATION_FAILED",
            "Validation failed",
            json!({"code": "METADATA_VALIDATION_FAILED", "errors": {"fieldMetadata": [{"code": "FIELD_ALREADY_EXISTS", "message": "x"}]}}),
        );
        assert!(matches!(
            newer.into_already_exists(),
            TwentyError::AlreadyExists { .. }
        ));
        let other = graphql(
            "METADATA_VALIDATION_FAILED",
            "Validation failed",
            json!({"errors": {"fieldMetadata": [{"code": "INVALID_FIELD_INPUT"}]}}),
        );
        assert!(matches!(
            other.into_already_exists(),
            TwentyError::GraphQl { .. }
        ));
    }

    #[test]
    fn limit_reached_is_throttling() {
        let body = json!({"errors": [{"message": "Limit reached", "extensions": {"code": "LIMIT_REACHED"}}]});
        assert!(matches!(
            graphql_error(&body, "objects", None),
            Some(TwentyError::RateLimited { .. })
        ));
    }

    #[test]
    fn rest_data_takes_the_single_key() {
        let body = json!({"data": {"createCompanies": [1]}});
        assert_eq!(rest_data(&body), Some(&json!([1])));
        assert_eq!(rest_data(&json!({"data": {}})), None);
    }
}
