//! A fake Twenty for every CRM test: `POST /metadata` and `POST /graphql`, the REST data API (`/rest/*`) and
//! `GET /client-config`, on one loopback port.
//!
//! `/metadata` runs on Twenty's real schema at the pinned version (`twenty_graphql.rs`: rebuilt from npm's
//! `twenty-client-sdk` by `scripts/test`): every document is validated by a real GraphQL validator and
//! refused as Twenty v2.43 refuses it (HTTP 200, graphql-js's message and locations); variables are coerced
//! by the schema (a missing required input field is Twenty's 400 `BAD_USER_INPUT`); introspection answers
//! come from the schema, and production Twenty's refusal of introspection without a workspace is imitated;
//! answers carry exactly the selected fields. The handlers below compute root fields and refuse what Twenty's
//! resolvers refuse, with Twenty's error bodies: the workspace cap (`Cannot create more than 5 workspaces
//! without a valid enterprise key`, FORBIDDEN), a missing workspace name, reserved metadata names, option
//! values/labels/ids, a second user with the same email, an `origin` that is not the workspace's URL, a second
//! activation, unquoted defaults, a RELATION to an object that does not exist. `/graphql` (records, a schema
//! generated per workspace and not published) is parsed for real and answered by root field.
//!
//! ```ignore
//! let twenty = FakeTwentyServer::start().await;                       // v2.43, production, cap 5
//! twenty.lock().version = Version::Older;                             // v1.x call shapes
//! twenty.lock().max_workspaces = Some(1);                             // the workspace cap
//! let app = helpers::spawn_app_with(Role::All, twenty.env()).await;
//! twenty.lock().lose_answer_next("createApiKey", 1);                  // knobs: faults, slowness, 429s
//! let token = twenty.lock().api_key_tokens(&workspace_id)[0].clone(); // inspection
//! ```
//!
//! Tokens: `signUp`/`signIn` give a workspace-agnostic token, login tokens are exchanged for a workspace
//! access token at the workspace's URL, and an API key token selects its workspace; REST accepts API key
//! tokens only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::twenty_graphql::{self, Answer, TwentySchema, edit, records_root_fields};

/// An encryption key for `secrets.encryption_keys` (Twenty requires one): base64 of 32 bytes.
pub(crate) const ENCRYPTION_KEY: &str = "test-twenty:d29zb29sLXR3ZW50eS10ZXN0LWtleS0zMi1ieXRlcyE=";

/// Which Twenty the fake imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) enum Version {
    /// The pinned version (v2.43): its published schema as it is.
    #[default]
    Pinned,
    /// v1.x shapes, as the published v2.43 schema edited by what changed since (our reading; no v1.x schema
    /// is published): `signUpInNewWorkspace` without `input`, no `origin` at login, no `roleId` on API keys,
    /// no `signIn`, `updateWorkspaceMemberSettings` or `triggerInstallAppsOnboardingStep`,
    /// `skipSyncEmailOnboardingStep` without arguments, `UserWorkspace.workspace` instead of
    /// `User.availableWorkspaces`.
    Older,
}

/// Which "already exists" error shape duplicates get (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DuplicateShape {
    /// v0.3x–v1.x: `extensions.code: "CONFLICT"`, "Field already exists".
    #[default]
    Conflict,
    /// v2 builder: `METADATA_VALIDATION_FAILED` with `errors.{objectMetadata|fieldMetadata}[].code`
    /// `…_ALREADY_EXISTS`.
    ValidationFailed,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) email: String,
    password: String,
    pub(crate) workspaces: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) id: String,
    pub(crate) url: String,
    pub(crate) display_name: String,
    /// `activationStatus`.
    pub(crate) status: String,
    pub(crate) owner: String,
    /// Pending onboarding flags: CONNECT_ACCOUNT, CREATE_PROFILE, INVITE_TEAM, INSTALL_APPS.
    pub(crate) pending: BTreeSet<&'static str>,
    pub(crate) member_id: String,
    pub(crate) member_name: Option<Value>,
    pub(crate) roles: Vec<(String, String)>,
    pub(crate) objects: Vec<Object>,
    /// Records per object `namePlural`.
    pub(crate) records: HashMap<String, Vec<Value>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) id: String,
    pub(crate) name_singular: String,
    pub(crate) name_plural: String,
    pub(crate) is_custom: bool,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) field_type: String,
    pub(crate) is_custom: bool,
    pub(crate) is_unique: bool,
    pub(crate) is_active: bool,
    pub(crate) options: Value,
    pub(crate) default_value: Value,
    /// RELATION: the target object's id.
    pub(crate) relation_target: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    pub(crate) id: String,
    pub(crate) workspace: String,
    pub(crate) name: String,
    pub(crate) role_id: Option<String>,
    pub(crate) expires_at: String,
    pub(crate) tokens: Vec<String>,
    /// `revokeApiKey`: its tokens stop working.
    pub(crate) revoked: bool,
}

#[derive(Debug, Clone)]
enum Token {
    Agnostic { user: String },
    Login { user: String, workspace: String },
    Access { user: String, workspace: String },
    ApiKey { workspace: String, key: String },
}

#[derive(Debug)]
pub(crate) struct FakeTwenty {
    pub(crate) version: Version,
    pub(crate) duplicates: DuplicateShape,
    /// Root fields left out of the schema (so out of introspection, and refused by validation).
    pub(crate) hidden: BTreeSet<String>,
    /// Whether the server runs as production (the official image's default): introspection only for
    /// requests with a workspace.
    pub(crate) production: bool,
    /// `MAX_WORKSPACES_WITHOUT_ENTERPRISE_KEY` with no Enterprise key (5 in v2.43); `None`: a valid key.
    pub(crate) max_workspaces: Option<usize>,
    /// `appVersion` of `GET /client-config` (Twenty's `APP_VERSION`).
    pub(crate) app_version: Option<String>,
    schema: Option<(SchemaKey, Arc<TwentySchema>)>,
    /// `updateWorkspaceMember` names the member but leaves PROFILE_CREATION pending.
    pub(crate) ignore_profile_update: bool,
    pub(crate) users: Vec<User>,
    pub(crate) workspaces: Vec<Workspace>,
    pub(crate) api_keys: Vec<ApiKey>,
    base: String,
    tokens: HashMap<String, Token>,
    calls: HashMap<String, u32>,
    fail: HashMap<String, u32>,
    lose: HashMap<String, u32>,
    slow: HashMap<String, Duration>,
    throttle: u32,
    throttle_retry_after: u64,
    sequence: u64,
    /// Twenty's own database, when the test gives it one (`store_onboarding_flags_in`): onboarding flags are
    /// then also `core."keyValuePair"` rows, and a row deleted there clears the flag, as in real Twenty.
    database: Option<sqlx::PgPool>,
    /// Workspaces whose flags were written to `database`.
    mirrored: HashSet<String>,
}

/// What a served schema variant depends on.
type SchemaKey = (Version, BTreeSet<String>);

impl Default for FakeTwenty {
    fn default() -> Self {
        Self {
            version: Version::default(),
            duplicates: DuplicateShape::default(),
            hidden: BTreeSet::new(),
            production: true,
            max_workspaces: Some(5),
            app_version: Some(format!("v{}", wosool::crm::twenty::PINNED_VERSION)),
            schema: None,
            ignore_profile_update: false,
            users: vec![],
            workspaces: vec![],
            api_keys: vec![],
            base: String::new(),
            tokens: HashMap::new(),
            calls: HashMap::new(),
            fail: HashMap::new(),
            lose: HashMap::new(),
            slow: HashMap::new(),
            throttle: 0,
            throttle_retry_after: 0,
            sequence: 0,
            database: None,
            mirrored: HashSet::new(),
        }
    }
}

pub(crate) type Shared = Arc<Mutex<FakeTwenty>>;

/// The running fake.
pub(crate) struct FakeTwentyServer {
    url: String,
    state: Shared,
}

impl FakeTwentyServer {
    pub(crate) async fn start() -> Self {
        let state: Shared = Arc::default();
        let router = Router::new()
            .route("/metadata", post(metadata_endpoint))
            .route("/graphql", post(graphql_endpoint))
            .route("/rest/batch/{plural}", post(rest_batch))
            .route("/rest/{plural}", get(rest_list).post(rest_create))
            .route("/rest/{plural}/{id}", get(rest_get))
            .route("/client-config", get(client_config))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Twenty");
        let address = listener.local_addr().expect("fake Twenty address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        let url = format!("http://{address}");
        state.lock().unwrap().base = url.clone();
        Self { url, state }
    }

    /// Twenty's base URL (`crm.base_url`).
    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }

    /// The environment pointing an app at the fake: `crm.base_url`, an encryption key, quick retries.
    pub(crate) fn env(&self) -> impl FnOnce(&mut Vec<(String, String)>) + use<> {
        let url = self.url.clone();
        move |env: &mut Vec<(String, String)>| {
            env.push(("WOSOOL_CRM__BASE_URL".into(), url));
            env.push((
                "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
                format!("[\"{ENCRYPTION_KEY}\"]"),
            ));
            env.push(("WOSOOL_CRM__MAX_RETRIES".into(), "2".into()));
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, FakeTwenty> {
        self.state.lock().unwrap()
    }

    /// From now on, onboarding flags of new workspaces are also rows of `core."keyValuePair"` in the database
    /// at `url` (created here, as in Twenty's schema, §3.2 "Storage"), and `onboardingStatus` reads them: a
    /// flag whose row was deleted (the SQL fallback) is cleared.
    pub(crate) async fn store_onboarding_flags_in(&self, url: &str) -> sqlx::PgPool {
        let pool = sqlx::PgPool::connect(url).await.expect("Twenty's database");
        sqlx::raw_sql(
            r#"CREATE SCHEMA IF NOT EXISTS core;
               CREATE TABLE IF NOT EXISTS core."keyValuePair" (
                   id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                   "userId" uuid,
                   "workspaceId" uuid,
                   key text NOT NULL,
                   value jsonb,
                   type text NOT NULL
               );"#,
        )
        .execute(&pool)
        .await
        .expect("keyValuePair table");
        self.lock().database = Some(pool.clone());
        pool
    }
}

/// The schema of [`Version::Older`]: the published one edited back to v1.x's shapes (built once).
pub(crate) fn older_schema() -> Arc<TwentySchema> {
    static OLDER: std::sync::OnceLock<Arc<TwentySchema>> = std::sync::OnceLock::new();
    OLDER
        .get_or_init(|| {
            Arc::new(twenty_graphql::published().edited(|s| {
                edit::remove_argument(s, "Mutation", "signUpInNewWorkspace", "input");
                edit::remove_argument(s, "Mutation", "getLoginTokenFromCredentials", "origin");
                edit::remove_argument(
                    s,
                    "Mutation",
                    "skipSyncEmailOnboardingStep",
                    "isAutoSkipped",
                );
                edit::remove_field(s, "CreateApiKeyInput", "roleId");
                for gone in [
                    "signIn",
                    "updateWorkspaceMemberSettings",
                    "triggerInstallAppsOnboardingStep",
                ] {
                    edit::remove_field(s, "Mutation", gone);
                }
                edit::remove_field(s, "User", "availableWorkspaces");
                edit::add_field(s, "UserWorkspace", "workspace", "Workspace");
            }))
        })
        .clone()
}

/// `GET /client-config`: Twenty's public configuration; `appVersion` is its `APP_VERSION`.
async fn client_config(State(state): State<Shared>) -> Response {
    let fake = state.lock().unwrap();
    axum::Json(json!({
        "appVersion": fake.app_version,
        "isMultiWorkspaceEnabled": true,
        "isEmailVerificationRequired": false,
        "signInPrefilled": false,
    }))
    .into_response()
}

/// The `keyValuePair` key of a fake flag.
fn flag_key(flag: &str) -> String {
    format!("ONBOARDING_{flag}_PENDING")
}

/// Writes the flags of workspaces created since the last call to Twenty's database; INVITE_TEAM at workspace
/// level (no user), the others for (owner, workspace), as sign-up does (§3.2).
async fn mirror_new_flags(state: &Shared, db: &sqlx::PgPool) {
    let fresh: Vec<(String, String, Vec<&'static str>)> = {
        let mut fake = state.lock().unwrap();
        let fresh: Vec<_> = fake
            .workspaces
            .iter()
            .filter(|ws| !fake.mirrored.contains(&ws.id))
            .map(|ws| {
                (
                    ws.id.clone(),
                    ws.owner.clone(),
                    ws.pending.iter().copied().collect(),
                )
            })
            .collect();
        fake.mirrored
            .extend(fresh.iter().map(|(id, _, _)| id.clone()));
        fresh
    };
    for (workspace, owner, flags) in fresh {
        for flag in flags {
            let user = (flag != "INVITE_TEAM").then(|| owner.clone());
            sqlx::query(
                r#"INSERT INTO core."keyValuePair" ("userId", "workspaceId", key, value, type)
                   VALUES ($1::uuid, $2::uuid, $3, 'true', 'USER_VARIABLE')"#,
            )
            .bind(user)
            .bind(&workspace)
            .bind(flag_key(flag))
            .execute(db)
            .await
            .expect("insert flag");
        }
    }
}

/// Clears the flags whose rows are gone from Twenty's database (merged over the three scopes of §3.2).
async fn read_flags(state: &Shared, db: &sqlx::PgPool) {
    let rows: Vec<(Option<String>, Option<String>, String)> = sqlx::query_as(
        r#"SELECT "userId"::text, "workspaceId"::text, key FROM core."keyValuePair"
            WHERE key LIKE 'ONBOARDING\_%' ESCAPE '\'"#,
    )
    .fetch_all(db)
    .await
    .expect("read flags");
    let mut fake = state.lock().unwrap();
    let mirrored = fake.mirrored.clone();
    for ws in fake
        .workspaces
        .iter_mut()
        .filter(|ws| mirrored.contains(&ws.id))
    {
        let present = |flag: &str| {
            rows.iter().any(|(user, workspace, key)| {
                *key == flag_key(flag)
                    && match (user, workspace) {
                        (Some(user), Some(workspace)) => *user == ws.owner && *workspace == ws.id,
                        (Some(user), None) => *user == ws.owner,
                        (None, Some(workspace)) => *workspace == ws.id,
                        (None, None) => false,
                    }
            })
        };
        ws.pending.retain(|flag| present(flag));
    }
}

impl FakeTwenty {
    /// The next `times` calls of `operation` (a GraphQL root field, or `POST /rest/batch`, `POST /rest`,
    /// `GET /rest`) answer 500 without doing anything.
    pub(crate) fn fail_next(&mut self, operation: &str, times: u32) {
        self.fail.insert(operation.into(), times);
    }

    /// The next `times` calls of `operation` do their work, then answer 500 (a lost answer: the caller cannot
    /// know it happened).
    pub(crate) fn lose_answer_next(&mut self, operation: &str, times: u32) {
        self.lose.insert(operation.into(), times);
    }

    /// Every call of `operation` waits `delay` before being handled.
    pub(crate) fn slow(&mut self, operation: &str, delay: Duration) {
        self.slow.insert(operation.into(), delay);
    }

    /// The next `times` REST calls answer 429 with `Retry-After: retry_after_secs`.
    pub(crate) fn throttle_rest(&mut self, times: u32, retry_after_secs: u64) {
        self.throttle = times;
        self.throttle_retry_after = retry_after_secs;
    }

    /// Calls of `operation` so far (including failed ones).
    pub(crate) fn calls(&self, operation: &str) -> u32 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// Leaves `root_field` out of the schema, as a version without it: absent from introspection, refused
    /// by validation.
    pub(crate) fn hide(&mut self, root_field: &str) {
        self.hidden.insert(root_field.into());
    }

    /// The schema this fake serves now: the published one, edited for `version` and `hidden`.
    fn schema(&mut self) -> Arc<TwentySchema> {
        let key = (self.version, self.hidden.clone());
        if let Some((cached, schema)) = &self.schema
            && *cached == key
        {
            return schema.clone();
        }
        let mut schema = match self.version {
            Version::Pinned => twenty_graphql::published(),
            Version::Older => older_schema(),
        };
        if !self.hidden.is_empty() {
            let hidden = self.hidden.clone();
            schema = Arc::new(schema.edited(|s| {
                for name in &hidden {
                    let root = if s.types.get("Mutation").is_some_and(|t| {
                        matches!(t, apollo_compiler::schema::ExtendedType::Object(o) if o.fields.contains_key(name.as_str()))
                    }) {
                        "Mutation"
                    } else {
                        "Query"
                    };
                    edit::remove_field(s, root, name);
                }
            }));
        }
        self.schema = Some((key, schema.clone()));
        schema
    }

    pub(crate) fn workspace(&self, id: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|ws| ws.id == id)
    }

    /// Every API key token minted for `workspace`.
    pub(crate) fn api_key_tokens(&self, workspace: &str) -> Vec<String> {
        self.api_keys
            .iter()
            .filter(|key| key.workspace == workspace)
            .flat_map(|key| key.tokens.clone())
            .collect()
    }

    /// The workspace an API key token selects.
    pub(crate) fn workspace_of_token(&self, token: &str) -> Option<String> {
        match self.token(token)? {
            Token::ApiKey { workspace, .. } => Some(workspace.clone()),
            _ => None,
        }
    }

    /// The records of `plural` in `workspace`.
    pub(crate) fn records(&self, workspace: &str, plural: &str) -> Vec<Value> {
        self.workspace(workspace)
            .and_then(|ws| ws.records.get(plural).cloned())
            .unwrap_or_default()
    }

    /// An object of `workspace` by `nameSingular`.
    pub(crate) fn object(&self, workspace: &str, name_singular: &str) -> Option<&Object> {
        self.workspace(workspace)?
            .objects
            .iter()
            .find(|object| object.name_singular == name_singular)
    }

    /// The `onboardingStatus` `currentUser` reports in `workspace` (newest order of checks, §2.3).
    pub(crate) fn onboarding_status(&self, workspace: &str) -> &'static str {
        let Some(ws) = self.workspace(workspace) else {
            return "WORKSPACE_ACTIVATION";
        };
        if ws.status != "ACTIVE" {
            return "WORKSPACE_ACTIVATION";
        }
        for (flag, status) in [
            ("CONNECT_ACCOUNT", "SYNC_EMAIL"),
            ("INSTALL_APPS", "APPS_INSTALLATION"),
            ("CREATE_PROFILE", "PROFILE_CREATION"),
            ("INVITE_TEAM", "INVITE_TEAM"),
        ] {
            if ws.pending.contains(flag) {
                return status;
            }
        }
        "COMPLETED"
    }

    fn next_id(&mut self) -> String {
        self.sequence += 1;
        uuid::Uuid::new_v4().to_string()
    }

    fn mint(&mut self, token: Token) -> String {
        let value = format!("fake-twenty-{}", uuid::Uuid::new_v4().simple());
        self.tokens.insert(value.clone(), token);
        value
    }

    fn workspace_mut(&mut self, id: &str) -> Option<&mut Workspace> {
        self.workspaces.iter_mut().find(|ws| ws.id == id)
    }

    /// Counts a call; what the knobs say about it.
    fn knobs(&mut self, operation: &str) -> (bool, bool, Option<Duration>) {
        *self.calls.entry(operation.into()).or_default() += 1;
        let take = |map: &mut HashMap<String, u32>| match map.get_mut(operation) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let fail = take(&mut self.fail);
        let lose = take(&mut self.lose);
        (fail, lose, self.slow.get(operation).copied())
    }
}

// ---------------------------------------------------------------------------------------------------------
// GraphQL

type GqlResult = Result<Value, Value>;

/// An error a Twenty resolver throws, as its error hook serialises it (HTTP 200, `data: null`): the
/// message, `extensions.code`, the exception's own code as `subCode` when it has one, and a
/// `userFriendlyMessage`.
fn gql_error(message: &str, code: &str) -> Value {
    json!({ "message": message, "extensions": { "code": code, "userFriendlyMessage": message } })
}

fn gql_error_with(message: &str, code: &str, sub_code: &str, friendly: &str) -> Value {
    json!({ "message": message, "extensions": {
        "subCode": sub_code, "userFriendlyMessage": friendly, "code": code,
    } })
}

fn unauthenticated() -> Value {
    gql_error("Unauthenticated", "UNAUTHENTICATED")
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({ "errors": [gql_error("Internal server error", "INTERNAL_SERVER_ERROR")], "data": null })),
    )
        .into_response()
}

/// A metadata validation failure of Twenty's v2 builder (`METADATA_VALIDATION_FAILED`, HTTP 200): one failed
/// entity of `kind` (`objectMetadata` or `fieldMetadata`) with its errors (`(code, message, value)`).
fn metadata_validation_failed(kind: &str, errors: &[(&str, String, Value)]) -> Value {
    let errors: Vec<Value> = errors
        .iter()
        .map(|(code, message, value)| {
            json!({ "code": code, "message": message, "userFriendlyMessage": message, "value": value })
        })
        .collect();
    let friendly = if errors.len() > 1 {
        "Many validation errors".to_owned()
    } else {
        errors[0]["message"].as_str().unwrap_or_default().to_owned()
    };
    json!({
        "message": "Workspace migration builder failed",
        "extensions": {
            "code": "METADATA_VALIDATION_FAILED",
            "errors": { kind: [{ "type": "create", "metadataName": kind, "errors": errors }] },
            "summary": { "totalErrors": 1, kind: 1 },
            "message": format!("Validation failed for 1 {kind}"),
            "userFriendlyMessage": friendly,
        },
    })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

async fn metadata_endpoint(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graphql_request(state, headers, body, Endpoint::Metadata).await
}

async fn graphql_endpoint(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graphql_request(state, headers, body, Endpoint::Graphql).await
}

#[derive(Clone, Copy)]
enum Endpoint {
    Metadata,
    Graphql,
}

/// The name of the first root field of `query`'s first operation, for the knobs (`None` if it does not
/// parse: the validator answers that).
fn first_root_field(query: &str) -> Option<String> {
    use apollo_compiler::ast;
    let document = ast::Document::parse(query, "request.graphql").ok()?;
    document.definitions.iter().find_map(|d| match d {
        ast::Definition::OperationDefinition(op) => {
            op.selection_set
                .iter()
                .find_map(|selection| match selection {
                    ast::Selection::Field(field) => Some(field.name.to_string()),
                    _ => None,
                })
        }
        _ => None,
    })
}

async fn graphql_request(
    state: Shared,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "errors": [{ "message": "POST body sent invalid JSON." }] })),
        )
            .into_response();
    };
    let query = body["query"].as_str().unwrap_or_default().to_owned();
    let variables = body["variables"].clone();
    let operation_name = body["operationName"].as_str().map(str::to_owned);
    let token = bearer(&headers);
    let operation = first_root_field(&query).unwrap_or_default();
    let (fail, lose, slow) = state.lock().unwrap().knobs(&operation);
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    if fail {
        return internal_error();
    }
    let database = state.lock().unwrap().database.clone();
    if let Some(db) = &database {
        read_flags(&state, db).await;
    }
    // The lock lives in this block only: the answer future must stay `Send` across the awaits around it.
    let answer = {
        let mut fake = state.lock().unwrap();
        match endpoint {
            Endpoint::Metadata => {
                let schema = fake.schema();
                // Production Twenty refuses introspection to requests without a workspace, and strips
                // suggestions from their errors (useDisableIntrospectionAndSuggestionsForUnauthenticatedUsers).
                let anonymous = fake.production
                    && !matches!(
                        token.as_deref().and_then(|t| fake.token(t)),
                        Some(Token::Access { .. } | Token::ApiKey { .. })
                    );
                schema.execute(
                    &query,
                    operation_name.as_deref(),
                    &variables,
                    anonymous,
                    &mut |call| fake.metadata_field(call.name, &call.arguments, token.as_deref()),
                )
            }
            Endpoint::Graphql => match records_root_fields(&query, &variables) {
                Err(answer) => answer,
                Ok((mutation, fields)) => {
                    let mut data = serde_json::Map::new();
                    let mut failure = None;
                    for (key, name, arguments) in fields {
                        match fake.records_field(&name, mutation, &arguments, token.as_deref()) {
                            Ok(value) => {
                                data.insert(key, value);
                            }
                            Err(error) => {
                                failure = Some(error);
                                break;
                            }
                        }
                    }
                    Answer {
                        status: StatusCode::OK,
                        body: match failure {
                            Some(error) => json!({ "errors": [error], "data": null }),
                            None => json!({ "data": data }),
                        },
                    }
                }
            },
        }
    };
    if let Some(db) = &database {
        mirror_new_flags(&state, db).await;
    }
    if lose {
        return internal_error();
    }
    (answer.status, axum::Json(answer.body)).into_response()
}

fn is_camel_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

fn is_quoted(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() >= 2 && s.starts_with('\'') && s.ends_with('\''))
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// Twenty's reserved metadata names (twenty-shared `reserved-metadata-name-keywords.constant.ts`, as of
/// v2.43), transcribed here independently of the manifest's own pre-check.
const RESERVED_METADATA_NAMES: &[&str] = &[
    "approvedAccessDomain",
    "approvedAccessDomains",
    "appToken",
    "appTokens",
    "billingCustomer",
    "billingCustomers",
    "billingEntitlement",
    "billingEntitlements",
    "billingMeter",
    "billingMeters",
    "billingProduct",
    "billingProducts",
    "billingSubscription",
    "billingSubscriptions",
    "billingSubscriptionItem",
    "billingSubscriptionItems",
    "featureFlag",
    "featureFlags",
    "job",
    "jobs",
    "keyValuePair",
    "keyValuePairs",
    "pageLayout",
    "pageLayouts",
    "pageLayoutTab",
    "pageLayoutTabs",
    "pageLayoutWidget",
    "pageLayoutWidgets",
    "postgresCredential",
    "postgresCredentials",
    "twoFactorMethod",
    "twoFactorMethods",
    "user",
    "users",
    "userWorkspace",
    "userWorkspaces",
    "workspace",
    "workspaces",
    "role",
    "roles",
    "userWorkspaceRole",
    "userWorkspaceRoles",
    "plan",
    "plans",
    "event",
    "events",
    "field",
    "fields",
    "link",
    "links",
    "currency",
    "currencies",
    "fullNames",
    "address",
    "addresses",
    "type",
    "types",
    "object",
    "objects",
    "index",
    "relation",
    "relations",
    "aggregate",
];

const RESERVED_MESSAGE: &str =
    "This name is reserved. Use a different name or the system will add \"Custom\" suffix.";

const COLORS: [&str; 10] = [
    "green",
    "turquoise",
    "sky",
    "blue",
    "purple",
    "pink",
    "red",
    "orange",
    "yellow",
    "gray",
];

/// Twenty's option value rule (`isSnakeCaseString`): `^(?!.*__)[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`.
fn is_upper_snake(value: &str) -> bool {
    let mut parts = value.split('_');
    parts.next().is_some_and(|first| {
        first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && first
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }) && parts.all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// What Twenty's enum validator (`validate-enum-flat-field-metadata.util.ts`) says about SELECT /
/// MULTI_SELECT options, after it filled in missing ids: its messages, empty when the options are valid.
pub(crate) fn option_errors(options: &Value) -> Vec<String> {
    let Some(list) = options.as_array().filter(|l| !l.is_empty()) else {
        return vec!["Options are required for enum fields".into()];
    };
    let mut errors = vec![];
    for option in list {
        if !option.is_object() {
            errors.push("Option must be an object".into());
            continue;
        }
        match &option["id"] {
            Value::String(id) if uuid::Uuid::parse_str(id).is_ok() => {}
            Value::String(_) => errors.push("Option id is invalid".to_owned()),
            _ => errors.push("Option id is required".to_owned()),
        }
        match option["value"].as_str() {
            None => errors.push("Option value is required".into()),
            Some(v) if v.len() > 63 => errors.push("Option value exceeds 63 characters".into()),
            Some(v) if !is_upper_snake(v) => errors.push(format!(
                "Value must be in UPPER_CASE and follow snake_case \"{v}\""
            )),
            Some(_) => {}
        }
        match option["label"].as_str() {
            None => errors.push("Option label is required".into()),
            Some(l) if l.chars().count() > 63 => {
                errors.push("Option label exceeds 63 characters".into())
            }
            Some(l) if l.contains(',') => errors.push("Label must not contain a comma".into()),
            Some(l) if l.trim().is_empty() => errors.push("Label must not be empty".into()),
            Some(_) => {}
        }
        if !option["color"]
            .as_str()
            .is_some_and(|c| COLORS.contains(&c))
        {
            errors.push("Option color is invalid".into());
        }
    }
    for key in ["position", "id", "value"] {
        let values: Vec<&Value> = list.iter().map(|o| &o[key]).collect();
        let distinct: HashSet<String> = values.iter().map(|v| v.to_string()).collect();
        if distinct.len() != values.len() {
            errors.push(format!("Duplicated option {key}"));
        }
    }
    errors
}

/// Twenty fills in a v4 id where an option has none (`{ id: v4(), ...option }`: an explicit `id: null`
/// stays null and is refused).
pub(crate) fn with_option_ids(options: Value) -> Value {
    match options {
        Value::Array(list) => Value::Array(
            list.into_iter()
                .map(|mut option| {
                    if let Some(fields) = option.as_object_mut()
                        && !fields.contains_key("id")
                    {
                        fields.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
                    }
                    option
                })
                .collect(),
        ),
        other => other,
    }
}

fn field(name: &str, field_type: &str, is_custom: bool) -> Field {
    Field {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        field_type: field_type.into(),
        is_custom,
        is_unique: false,
        is_active: true,
        options: Value::Null,
        default_value: Value::Null,
        relation_target: None,
    }
}

fn object(singular: &str, plural: &str, is_custom: bool, extra: &[(&str, &str)]) -> Object {
    let mut fields: Vec<Field> = [
        ("id", "UUID"),
        ("name", "TEXT"),
        ("createdAt", "DATE_TIME"),
        ("updatedAt", "DATE_TIME"),
        ("deletedAt", "DATE_TIME"),
        ("createdBy", "ACTOR"),
        ("position", "POSITION"),
    ]
    .iter()
    .map(|(name, ty)| field(name, ty, false))
    .collect();
    fields.extend(extra.iter().map(|(name, ty)| field(name, ty, false)));
    Object {
        id: uuid::Uuid::new_v4().to_string(),
        name_singular: singular.into(),
        name_plural: plural.into(),
        is_custom,
        fields,
    }
}

fn standard_objects() -> Vec<Object> {
    let mut person = object(
        "person",
        "people",
        false,
        &[("emails", "EMAILS"), ("phones", "PHONES")],
    );
    if let Some(name) = person.fields.iter_mut().find(|f| f.name == "name") {
        name.field_type = "FULL_NAME".into();
    }
    vec![
        object("company", "companies", false, &[("domainName", "LINKS")]),
        person,
        object(
            "opportunity",
            "opportunities",
            false,
            &[("amount", "CURRENCY")],
        ),
        object("note", "notes", false, &[]),
        object("task", "tasks", false, &[]),
        // Workflows are standard objects since Twenty v1.x.
        object("workflow", "workflows", false, &[("statuses", "ARRAY")]),
        object("workflowRun", "workflowRuns", false, &[]),
        object("workflowVersion", "workflowVersions", false, &[]),
        object("workspaceMember", "workspaceMembers", false, &[]),
    ]
}

/// An object as the `objects` query answers it (Twenty's own objects are `isSystem` only for its internal
/// ones; the standard ones a merchant sees are not).
fn object_json(object: &Object) -> Value {
    let fields: Vec<Value> = object
        .fields
        .iter()
        .map(|f| {
            json!({ "node": {
                "id": f.id, "name": f.name, "type": f.field_type, "isActive": f.is_active,
                "isSystem": !f.is_custom && matches!(f.name.as_str(), "id" | "createdBy" | "position"),
                "isUnique": f.is_unique, "options": f.options, "defaultValue": f.default_value,
            } })
        })
        .collect();
    json!({
        "id": object.id, "nameSingular": object.name_singular, "namePlural": object.name_plural,
        "isActive": true, "isSystem": !object.is_custom && object.name_singular == "workspaceMember",
        "fields": { "edges": fields },
    })
}

/// The keys `updateWorkspaceMemberSettings` accepts in `update`: the standard workspaceMember fields but
/// `id` and `userId` (unknown keys are refused).
const MEMBER_SETTINGS: [&str; 10] = [
    "name",
    "locale",
    "colorScheme",
    "jobTitle",
    "avatarUrl",
    "timeZone",
    "dateFormat",
    "timeFormat",
    "calendarStartDay",
    "numberFormat",
];

impl FakeTwenty {
    fn token(&self, token: &str) -> Option<&Token> {
        let meaning = self.tokens.get(token)?;
        if let Token::ApiKey { key, .. } = meaning
            && self.api_keys.iter().any(|k| k.id == *key && k.revoked)
        {
            return None;
        }
        Some(meaning)
    }

    fn user_of(&self, token: Option<&str>) -> Result<(String, Option<String>), Value> {
        match token.and_then(|t| self.token(t)) {
            Some(Token::Agnostic { user }) => Ok((user.clone(), None)),
            Some(Token::Access { user, workspace }) => Ok((user.clone(), Some(workspace.clone()))),
            _ => Err(unauthenticated()),
        }
    }

    /// The workspace an access token (or, when `api_key_ok`, an API key token) selects.
    fn workspace_of(&self, token: Option<&str>, api_key_ok: bool) -> Result<String, Value> {
        match token.and_then(|t| self.token(t)) {
            Some(Token::Access { workspace, .. }) => Ok(workspace.clone()),
            Some(Token::ApiKey { workspace, .. }) if api_key_ok => Ok(workspace.clone()),
            _ => Err(unauthenticated()),
        }
    }

    fn check_credentials(&self, args: &Value) -> Result<String, Value> {
        self.users
            .iter()
            .find(|u| {
                Some(u.email.as_str()) == args["email"].as_str()
                    && Some(u.password.as_str()) == args["password"].as_str()
            })
            .map(|u| u.id.clone())
            .ok_or_else(|| {
                gql_error_with(
                    "Wrong password",
                    "FORBIDDEN",
                    "FORBIDDEN_EXCEPTION",
                    "Wrong password",
                )
            })
    }

    fn tokens_json(token: &str) -> Value {
        json!({ "tokens": {
            "accessOrWorkspaceAgnosticToken": { "token": token, "expiresAt": "2030-01-01T00:00:00.000Z" },
            "refreshToken": { "token": "refresh", "expiresAt": "2030-01-01T00:00:00.000Z" },
        } })
    }

    fn duplicate(&self, kind: &str, name: &str) -> Value {
        let (key, code, message) = if kind == "object" {
            (
                "objectMetadata",
                "OBJECT_ALREADY_EXISTS",
                "Object already exists",
            )
        } else {
            (
                "fieldMetadata",
                "FIELD_ALREADY_EXISTS",
                "Field already exists",
            )
        };
        match self.duplicates {
            DuplicateShape::Conflict => gql_error(message, "CONFLICT"),
            DuplicateShape::ValidationFailed => {
                metadata_validation_failed(key, &[(code, message.to_owned(), json!(name))])
            }
        }
    }

    fn invalid(&self, kind: &str, message: &str) -> Value {
        match self.duplicates {
            DuplicateShape::Conflict => gql_error(message, "BAD_USER_INPUT"),
            DuplicateShape::ValidationFailed => {
                let code = if kind == "objectMetadata" {
                    "INVALID_OBJECT_INPUT"
                } else {
                    "INVALID_FIELD_INPUT"
                };
                metadata_validation_failed(kind, &[(code, message.to_owned(), Value::Null)])
            }
        }
    }

    /// One root field of `/metadata`, with its coerced arguments (the document was validated against the
    /// schema before this is called: a root field that does not exist never gets here).
    fn metadata_field(&mut self, name: &str, args: &Value, token: Option<&str>) -> GqlResult {
        match name {
            "signUp" => {
                let email = args["email"].as_str().unwrap_or_default().to_owned();
                if self.users.iter().any(|u| u.email == email) {
                    return Err(gql_error_with(
                        "User already exists",
                        "BAD_USER_INPUT",
                        "USER_ALREADY_EXISTS",
                        "User already exists",
                    ));
                }
                let id = self.next_id();
                self.users.push(User {
                    id: id.clone(),
                    email,
                    password: args["password"].as_str().unwrap_or_default().into(),
                    workspaces: vec![],
                });
                let token = self.mint(Token::Agnostic { user: id });
                Ok(Self::tokens_json(&token))
            }
            "signIn" => {
                let user = self.check_credentials(args)?;
                let token = self.mint(Token::Agnostic { user });
                Ok(Self::tokens_json(&token))
            }
            "getLoginTokenFromCredentials" => {
                let user = self.check_credentials(args)?;
                let origin = args["origin"].as_str();
                let workspaces = &self
                    .users
                    .iter()
                    .find(|u| u.id == user)
                    .map(|u| u.workspaces.clone())
                    .unwrap_or_default();
                let workspace = match origin {
                    Some(origin) => self
                        .workspaces
                        .iter()
                        .find(|ws| ws.url == origin && workspaces.contains(&ws.id))
                        .map(|ws| ws.id.clone())
                        .or_else(|| (origin == self.base).then(String::new)),
                    None => Some(workspaces.first().cloned().unwrap_or_default()),
                }
                .ok_or_else(|| gql_error("User is not a member of this workspace", "FORBIDDEN"))?;
                let token = self.mint(Token::Login { user, workspace });
                Ok(
                    json!({ "loginToken": { "token": token, "expiresAt": "2030-01-01T00:00:00.000Z" } }),
                )
            }
            "getAuthTokensFromLoginToken" => {
                let origin = args["origin"].as_str().unwrap_or_default().to_owned();
                let Some(Token::Login { user, workspace }) = args["loginToken"]
                    .as_str()
                    .and_then(|t| self.tokens.get(t))
                    .cloned()
                else {
                    return Err(gql_error("Invalid login token", "UNAUTHENTICATED"));
                };
                if origin == self.base && workspace.is_empty() {
                    let token = self.mint(Token::Agnostic { user });
                    return Ok(Self::tokens_json(&token));
                }
                let matches = self
                    .workspace(&workspace)
                    .is_some_and(|ws| ws.url == origin);
                if !matches {
                    return Err(gql_error(
                        "Token is not valid for this workspace (origin)",
                        "FORBIDDEN",
                    ));
                }
                let token = self.mint(Token::Access { user, workspace });
                Ok(Self::tokens_json(&token))
            }
            "signUpInNewWorkspace" => self.sign_up_in_new_workspace(args, token),
            "activateWorkspace" => {
                let workspace = self.workspace_of(token, false)?;
                let admin = self.next_id();
                let member = self.next_id();
                let ws = self
                    .workspace_mut(&workspace)
                    .expect("workspace of a token");
                if ws.status != "PENDING_CREATION" {
                    return Err(gql_error("Workspace is not pending creation", "FORBIDDEN"));
                }
                ws.status = "ACTIVE".into();
                if let Some(name) = args["data"]["displayName"].as_str() {
                    ws.display_name = name.into();
                }
                ws.objects = standard_objects();
                ws.member_id = member;
                ws.roles = vec![
                    (admin, "Admin".into()),
                    (uuid::Uuid::new_v4().to_string(), "Member".into()),
                ];
                Ok(json!({ "id": ws.id, "activationStatus": ws.status }))
            }
            "currentUser" => {
                let (user, workspace) = self.user_of(token)?;
                let owned: Vec<&Workspace> = self
                    .workspaces
                    .iter()
                    .filter(|ws| ws.owner == user)
                    .collect();
                let available: Vec<Value> = owned
                    .iter()
                    .map(|ws| {
                        json!({ "id": ws.id, "displayName": ws.display_name, "sso": [],
                                       "workspaceUrls": { "subdomainUrl": ws.url } })
                    })
                    .collect();
                // Memberships; `workspace` on them exists only in the older schema the fake can serve.
                let memberships: Vec<Value> = owned
                    .iter()
                    .map(|ws| json!({ "id": format!("uw-{}", ws.id), "userId": user, "locale": "en",
                                       "workspace": { "id": ws.id, "workspaceUrls": { "subdomainUrl": ws.url } } }))
                    .collect();
                let email = self
                    .users
                    .iter()
                    .find(|u| u.id == user)
                    .map(|u| u.email.clone());
                let (status, current, member) =
                    match workspace.as_deref().and_then(|w| self.workspace(w)) {
                        Some(ws) => (
                            json!(self.onboarding_status(&ws.id)),
                            json!({ "id": ws.id, "activationStatus": ws.status }),
                            (!ws.member_id.is_empty()).then(|| json!({ "id": ws.member_id })),
                        ),
                        None => (Value::Null, Value::Null, None),
                    };
                Ok(json!({
                    "id": user, "email": email, "onboardingStatus": status, "workspaces": memberships,
                    "availableWorkspaces": {
                        "availableWorkspacesForSignIn": available, "availableWorkspacesForSignUp": [],
                    },
                    "currentWorkspace": current, "workspaceMember": member,
                }))
            }
            "skipSyncEmailOnboardingStep" => self.clear_flag(token, "CONNECT_ACCOUNT"),
            "skipInviteTeamOnboardingStep" | "sendInvitations" => {
                self.clear_flag(token, "INVITE_TEAM")
            }
            "triggerInstallAppsOnboardingStep" => self.clear_flag(token, "INSTALL_APPS"),
            "completeBookCallOnboardingStep" | "skipBookOnboardingStep" => {
                self.clear_flag(token, "BOOK_CALL")
            }
            "updateWorkspaceMemberSettings" => {
                let workspace = self.workspace_of(token, true)?;
                let input = &args["input"];
                let update = input["update"].as_object().cloned().unwrap_or_default();
                if update.is_empty() {
                    return Err(gql_error("Update input is empty", "BAD_USER_INPUT"));
                }
                if let Some(key) = update
                    .keys()
                    .find(|k| !MEMBER_SETTINGS.contains(&k.as_str()))
                {
                    return Err(gql_error(
                        &format!(
                            "Cannot update custom workspaceMember field via this endpoint: {key}"
                        ),
                        "BAD_USER_INPUT",
                    ));
                }
                let ignore_profile = self.ignore_profile_update;
                let ws = self
                    .workspace_mut(&workspace)
                    .expect("workspace of a token");
                if input["workspaceMemberId"].as_str() != Some(ws.member_id.as_str()) {
                    return Err(gql_error("Workspace member not found", "NOT_FOUND"));
                }
                if let Some(name) = update.get("name") {
                    ws.member_name = Some(name.clone());
                    let named = ["firstName", "lastName"]
                        .iter()
                        .any(|k| name[*k].as_str().is_some_and(|v| !v.trim().is_empty()));
                    if named && !ignore_profile {
                        ws.pending.remove("CREATE_PROFILE");
                    }
                }
                Ok(json!(true))
            }
            "apiKeys" => {
                // Active keys only (`findActiveByWorkspaceId`).
                let workspace = self.workspace_of(token, false)?;
                Ok(Value::Array(
                    self.api_keys
                        .iter()
                        .filter(|k| k.workspace == workspace && !k.revoked)
                        .map(|k| json!({ "id": k.id, "name": k.name, "expiresAt": k.expires_at, "revokedAt": null }))
                        .collect(),
                ))
            }
            "revokeApiKey" => {
                let workspace = self.workspace_of(token, false)?;
                let id = args["input"]["id"].as_str().unwrap_or_default();
                match self
                    .api_keys
                    .iter_mut()
                    .find(|k| k.id == id && k.workspace == workspace)
                {
                    Some(key) => {
                        key.revoked = true;
                        Ok(json!({ "id": key.id, "name": key.name }))
                    }
                    None => Ok(Value::Null),
                }
            }
            "getRoles" => {
                let workspace = self.workspace_of(token, false)?;
                let ws = self.workspace(&workspace).expect("workspace of a token");
                Ok(Value::Array(
                    ws.roles
                        .iter()
                        .map(|(id, label)| json!({ "id": id, "label": label }))
                        .collect(),
                ))
            }
            "createApiKey" => {
                let workspace = self.workspace_of(token, false)?;
                let input = &args["input"];
                let id = self.next_id();
                let key = ApiKey {
                    id: id.clone(),
                    workspace,
                    name: input["name"].as_str().unwrap_or_default().into(),
                    role_id: input["roleId"].as_str().map(str::to_owned),
                    expires_at: input["expiresAt"].as_str().unwrap_or_default().into(),
                    tokens: vec![],
                    revoked: false,
                };
                let answer = json!({ "id": id, "name": key.name, "expiresAt": key.expires_at });
                self.api_keys.push(key);
                Ok(answer)
            }
            "generateApiKeyToken" => {
                let workspace = self.workspace_of(token, false)?;
                let id = args["apiKeyId"].as_str().unwrap_or_default();
                if !self
                    .api_keys
                    .iter()
                    .any(|k| k.id == id && k.workspace == workspace)
                {
                    return Err(gql_error("API key not found", "NOT_FOUND"));
                }
                let minted = self.mint(Token::ApiKey {
                    workspace: workspace.clone(),
                    key: id.to_owned(),
                });
                if let Some(key) = self.api_keys.iter_mut().find(|k| k.id == id) {
                    key.tokens.push(minted.clone());
                }
                Ok(json!({ "token": minted }))
            }
            "objects" => {
                let workspace = self.workspace_of(token, true)?;
                if args["paging"]["first"]
                    .as_i64()
                    .is_some_and(|first| first > 1000)
                {
                    return Err(gql_error(
                        "Field paging.first max allowed value is `1000`.",
                        "BAD_USER_INPUT",
                    ));
                }
                let ws = self.workspace(&workspace).expect("workspace of a token");
                let edges: Vec<Value> = ws
                    .objects
                    .iter()
                    .map(|o| json!({ "node": object_json(o), "cursor": o.id }))
                    .collect();
                Ok(
                    json!({ "edges": edges, "pageInfo": { "hasNextPage": false, "hasPreviousPage": false } }),
                )
            }
            "deleteCurrentWorkspace" => {
                // The workspace's own admin, with a workspace access token (an API key cannot).
                let workspace = self.workspace_of(token, false)?;
                let index = self
                    .workspaces
                    .iter()
                    .position(|ws| ws.id == workspace)
                    .expect("workspace of a token");
                let removed = self.workspaces.remove(index);
                for user in &mut self.users {
                    user.workspaces.retain(|w| *w != workspace);
                }
                for key in self
                    .api_keys
                    .iter_mut()
                    .filter(|k| k.workspace == workspace)
                {
                    key.revoked = true;
                }
                self.tokens.retain(|_, t| !matches!(t, Token::Access { workspace: w, .. } | Token::Login { workspace: w, .. } if *w == workspace));
                Ok(json!({ "id": removed.id, "activationStatus": removed.status }))
            }
            "deleteUser" => {
                let (user, _) = self.user_of(token)?;
                if self.workspaces.iter().any(|ws| ws.owner == user) {
                    return Err(gql_error(
                        "Cannot delete a user who still owns a workspace",
                        "FORBIDDEN",
                    ));
                }
                let index = self
                    .users
                    .iter()
                    .position(|u| u.id == user)
                    .expect("user of a token");
                let removed = self.users.remove(index);
                self.tokens.retain(|_, t| !matches!(t, Token::Agnostic { user: u } | Token::Access { user: u, .. } if *u == user));
                Ok(json!({ "id": removed.id, "email": removed.email }))
            }
            "createOneObject" => {
                let workspace = self.workspace_of(token, true)?;
                self.create_object(&workspace, &args["input"]["object"])
            }
            "createOneField" => {
                let workspace = self.workspace_of(token, true)?;
                self.create_field(&workspace, &args["input"]["field"])
            }
            "updateOneField" => {
                let workspace = self.workspace_of(token, true)?;
                self.update_field(&workspace, &args["input"])
            }
            other => Err(gql_error(
                &format!("the fake Twenty does not implement {other}"),
                "INTERNAL_SERVER_ERROR",
            )),
        }
    }

    /// `signUpInNewWorkspace` (sign-in-up.service.ts): the workspace cap first, then the display name.
    fn sign_up_in_new_workspace(&mut self, args: &Value, token: Option<&str>) -> GqlResult {
        let (user, _) = self.user_of(token)?;
        if let Some(cap) = self.max_workspaces
            && !self.workspaces.is_empty()
            && self.workspaces.len() >= cap
        {
            return Err(gql_error_with(
                &format!("Cannot create more than {cap} workspaces without a valid enterprise key"),
                "FORBIDDEN",
                "FORBIDDEN_EXCEPTION",
                "Workspace limit reached. A valid enterprise key is required to create more workspaces.",
            ));
        }
        let takes_input = self
            .schema()
            .has_argument("Mutation", "signUpInNewWorkspace", "input");
        let display_name = args["input"]["displayName"]
            .as_str()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if takes_input && display_name.is_empty() {
            return Err(gql_error_with(
                "Workspace name is required",
                "BAD_USER_INPUT",
                "INVALID_INPUT",
                "Workspace name is required",
            ));
        }
        let id = self.next_id();
        let subdomain = format!("ws{}", self.sequence);
        let host = self.base.trim_start_matches("http://").to_owned();
        let url = format!("http://{subdomain}.{host}");
        let mut pending: BTreeSet<&'static str> =
            ["CONNECT_ACCOUNT", "CREATE_PROFILE", "INVITE_TEAM"].into();
        if self
            .schema()
            .has_field("Mutation", "triggerInstallAppsOnboardingStep")
        {
            pending.insert("INSTALL_APPS");
        }
        self.workspaces.push(Workspace {
            id: id.clone(),
            url: url.clone(),
            display_name,
            status: "PENDING_CREATION".into(),
            owner: user.clone(),
            pending,
            member_id: String::new(),
            member_name: None,
            roles: vec![],
            objects: vec![],
            records: HashMap::new(),
        });
        if let Some(u) = self.users.iter_mut().find(|u| u.id == user) {
            u.workspaces.push(id.clone());
        }
        let login = self.mint(Token::Login {
            user,
            workspace: id.clone(),
        });
        Ok(json!({
            "loginToken": { "token": login, "expiresAt": "2030-01-01T00:00:00.000Z" },
            "workspace": { "id": id, "workspaceUrls": { "subdomainUrl": url, "customUrl": null } },
        }))
    }

    fn clear_flag(&mut self, token: Option<&str>, flag: &str) -> GqlResult {
        let workspace = self.workspace_of(token, false)?;
        let ws = self
            .workspace_mut(&workspace)
            .expect("workspace of a token");
        ws.pending.remove(flag);
        Ok(json!({ "success": true }))
    }

    fn create_object(&mut self, workspace: &str, input: &Value) -> GqlResult {
        let singular = input["nameSingular"].as_str().unwrap_or_default();
        let plural = input["namePlural"].as_str().unwrap_or_default();
        if !is_camel_case(singular) || !is_camel_case(plural) || singular == plural {
            return Err(self.invalid(
                "objectMetadata",
                &format!("Invalid object names {singular:?}/{plural:?}"),
            ));
        }
        let reserved: Vec<(&str, String, Value)> = [singular, plural]
            .into_iter()
            .filter(|name| RESERVED_METADATA_NAMES.contains(name))
            .map(|name| {
                (
                    "INVALID_OBJECT_INPUT",
                    RESERVED_MESSAGE.to_owned(),
                    json!(name),
                )
            })
            .collect();
        if !reserved.is_empty() {
            return Err(metadata_validation_failed("objectMetadata", &reserved));
        }
        if input["labelSingular"].as_str().is_none() || input["labelPlural"].as_str().is_none() {
            return Err(self.invalid(
                "objectMetadata",
                "labelSingular and labelPlural are required",
            ));
        }
        let exists = self.workspace(workspace).is_some_and(|ws| {
            ws.objects.iter().any(|o| {
                [o.name_singular.as_str(), o.name_plural.as_str()]
                    .iter()
                    .any(|n| *n == singular || *n == plural)
            })
        });
        if exists {
            return Err(self.duplicate("object", singular));
        }
        let created = object(singular, plural, true, &[]);
        let answer = json!({ "id": created.id, "nameSingular": singular, "namePlural": plural });
        let ws = self.workspace_mut(workspace).expect("workspace of a token");
        ws.objects.push(created);
        Ok(answer)
    }

    fn create_field(&mut self, workspace: &str, input: &Value) -> GqlResult {
        let object_id = input["objectMetadataId"].as_str().unwrap_or_default();
        let name = input["name"].as_str().unwrap_or_default().to_owned();
        let field_type = input["type"].as_str().unwrap_or_default().to_owned();
        let Some(target) = self
            .workspace(workspace)
            .and_then(|ws| ws.objects.iter().find(|o| o.id == object_id))
            .cloned()
        else {
            return Err(gql_error("Object metadata not found", "NOT_FOUND"));
        };
        if input["label"].as_str().is_none() {
            return Err(self.invalid("fieldMetadata", "label is required"));
        }
        if !is_camel_case(&name) {
            return Err(self.invalid("fieldMetadata", &format!("Invalid field name {name:?}")));
        }
        if RESERVED_METADATA_NAMES.contains(&name.as_str()) {
            return Err(metadata_validation_failed(
                "fieldMetadata",
                &[(
                    "INVALID_FIELD_INPUT",
                    RESERVED_MESSAGE.to_owned(),
                    json!(name),
                )],
            ));
        }
        if target.fields.iter().any(|f| f.name == name) {
            return Err(self.duplicate("field", &name));
        }
        let options = with_option_ids(input.get("options").cloned().unwrap_or(Value::Null));
        let default = input.get("defaultValue").cloned().unwrap_or(Value::Null);
        if matches!(field_type.as_str(), "SELECT" | "MULTI_SELECT") {
            let errors = option_errors(&options);
            if !errors.is_empty() {
                let errors: Vec<(&str, String, Value)> = errors
                    .into_iter()
                    .map(|message| ("INVALID_FIELD_INPUT", message, Value::Null))
                    .collect();
                return Err(metadata_validation_failed("fieldMetadata", &errors));
            }
            let quoted_values: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["value"].as_str().map(|v| format!("'{v}'")))
                .collect();
            let defaults: Vec<&Value> = match (&default, field_type.as_str()) {
                (Value::Null, _) => vec![],
                (Value::Array(items), "MULTI_SELECT") => items.iter().collect(),
                (value, _) => vec![value],
            };
            for value in defaults {
                if !is_quoted(value) {
                    return Err(
                        self.invalid("fieldMetadata", "Default value should be as quoted string")
                    );
                }
                if !quoted_values
                    .iter()
                    .any(|q| Some(q.as_str()) == value.as_str())
                {
                    return Err(self.invalid(
                        "fieldMetadata",
                        &format!("Default value {value} must be one of the option values"),
                    ));
                }
            }
        }
        if field_type == "TEXT" && !default.is_null() && !is_quoted(&default) {
            return Err(self.invalid("fieldMetadata", "Default value should be as quoted string"));
        }
        if matches!(field_type.as_str(), "NUMBER" | "NUMERIC")
            && !default.is_null()
            && !default.is_number()
        {
            return Err(self.invalid("fieldMetadata", "Default value must be a number"));
        }
        let mut created = field(&name, &field_type, true);
        created.is_unique = input["isUnique"].as_bool().unwrap_or(false);
        created.options = options;
        created.default_value = default;
        let mut inverse = None;
        if field_type == "RELATION" {
            let payload = &input["relationCreationPayload"];
            let target_id = payload["targetObjectMetadataId"]
                .as_str()
                .unwrap_or_default();
            if !self
                .workspace(workspace)
                .is_some_and(|ws| ws.objects.iter().any(|o| o.id == target_id))
            {
                return Err(self.invalid("fieldMetadata", "Target object metadata not found"));
            }
            let inverse_name = payload["targetFieldName"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    let label = payload["targetFieldLabel"].as_str().unwrap_or("inverse");
                    let mut chars = label.chars().filter(|c| c.is_alphanumeric());
                    chars
                        .next()
                        .map(|c| c.to_lowercase().collect::<String>() + &chars.collect::<String>())
                        .unwrap_or_default()
                });
            created.relation_target = Some(target_id.to_owned());
            let mut back = field(&inverse_name, "RELATION", true);
            back.relation_target = Some(object_id.to_owned());
            inverse = Some((target_id.to_owned(), back));
        }
        let answer = json!({ "id": created.id, "name": name, "type": field_type });
        let ws = self.workspace_mut(workspace).expect("workspace of a token");
        if let Some(o) = ws.objects.iter_mut().find(|o| o.id == object_id) {
            o.fields.push(created);
        }
        if let Some((target, back)) = inverse
            && let Some(o) = ws.objects.iter_mut().find(|o| o.id == target)
        {
            o.fields.push(back);
        }
        Ok(answer)
    }

    fn update_field(&mut self, workspace: &str, input: &Value) -> GqlResult {
        let id = input["id"].as_str().unwrap_or_default();
        let update = &input["update"];
        let ws = self.workspace_mut(workspace).expect("workspace of a token");
        let Some(f) = ws
            .objects
            .iter_mut()
            .flat_map(|o| o.fields.iter_mut())
            .find(|f| f.id == id)
        else {
            return Err(gql_error("Field metadata not found", "NOT_FOUND"));
        };
        if let Some(options) = update.get("options") {
            let options = with_option_ids(options.clone());
            let errors = option_errors(&options);
            if !errors.is_empty() {
                let errors: Vec<(&str, String, Value)> = errors
                    .into_iter()
                    .map(|message| ("INVALID_FIELD_INPUT", message, Value::Null))
                    .collect();
                return Err(metadata_validation_failed("fieldMetadata", &errors));
            }
            f.options = options;
        }
        if let Some(default) = update.get("defaultValue") {
            f.default_value = default.clone();
        }
        if let Some(active) = update["isActive"].as_bool() {
            f.is_active = active;
        }
        Ok(json!({ "id": f.id, "name": f.name, "type": f.field_type }))
    }

    /// `/graphql`: `updateWorkspaceMember`, and any object's plural as a records query.
    fn records_field(
        &mut self,
        name: &str,
        mutation: bool,
        args: &Value,
        token: Option<&str>,
    ) -> GqlResult {
        let (user, workspace) = match token.and_then(|t| self.token(t)) {
            Some(Token::Access { user, workspace }) => (Some(user.clone()), workspace.clone()),
            Some(Token::ApiKey { workspace, .. }) => (None, workspace.clone()),
            _ => return Err(unauthenticated()),
        };
        let ignore_profile = self.ignore_profile_update;
        let ws = self
            .workspace_mut(&workspace)
            .expect("workspace of a token");
        if name == "updateWorkspaceMember" {
            if args["id"].as_str() != Some(ws.member_id.as_str()) {
                return Err(gql_error("Record not found", "NOT_FOUND"));
            }
            if let Some(member_name) = args["data"].get("name") {
                ws.member_name = Some(member_name.clone());
                // Only a user token clears the profile step (the pre-query hook clears the caller's flag).
                if user.is_some() && !ignore_profile {
                    ws.pending.remove("CREATE_PROFILE");
                }
            }
            return Ok(json!({ "id": ws.member_id }));
        }
        if !mutation && ws.objects.iter().any(|o| o.name_plural == name) {
            let records = ws.records.get(name).cloned().unwrap_or_default();
            let edges: Vec<Value> = records
                .iter()
                .map(|r| json!({ "node": r, "cursor": r["id"] }))
                .collect();
            return Ok(json!({
                "edges": edges, "totalCount": records.len(),
                "pageInfo": { "hasNextPage": false, "startCursor": null, "endCursor": null },
            }));
        }
        let parent = if mutation { "Mutation" } else { "Query" };
        Err(
            json!({ "message": format!("Cannot query field \"{name}\" on type \"{parent}\"."),
                    "locations": [{ "line": 1, "column": 1 }] }),
        )
    }
}

// ---------------------------------------------------------------------------------------------------------
// REST

fn rest_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "statusCode": status.as_u16(), "error": status.canonical_reason(), "messages": [message] })),
    )
        .into_response()
}

/// Knobs, throttling and API-key authentication of a REST call; the workspace and the object.
async fn rest_prelude(
    state: &Shared,
    headers: &HeaderMap,
    operation: &str,
    plural: &str,
) -> Result<(String, Object, bool), Response> {
    let (fail, lose, slow) = state.lock().unwrap().knobs(operation);
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    if fail {
        return Err(rest_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
        ));
    }
    let mut fake = state.lock().unwrap();
    if fake.throttle > 0 {
        fake.throttle -= 1;
        let mut response = rest_error(StatusCode::TOO_MANY_REQUESTS, "Limit reached");
        response.headers_mut().insert(
            "retry-after",
            fake.throttle_retry_after
                .to_string()
                .parse()
                .expect("header value"),
        );
        return Err(response);
    }
    let Some(workspace) = bearer(headers).and_then(|t| fake.workspace_of_token(&t)) else {
        return Err(rest_error(StatusCode::UNAUTHORIZED, "Token invalid."));
    };
    let Some(object) = fake
        .workspace(&workspace)
        .and_then(|ws| ws.objects.iter().find(|o| o.name_plural == plural))
        .cloned()
    else {
        return Err(rest_error(
            StatusCode::BAD_REQUEST,
            &format!("object '{plural}' not found"),
        ));
    };
    Ok((workspace, object, lose))
}

async fn rest_list(
    State(state): State<Shared>,
    Path(plural): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (workspace, _, lose) = match rest_prelude(&state, &headers, "GET /rest", &plural).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let records = state.lock().unwrap().records(&workspace, &plural);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(60)
        .min(200);
    let start = query
        .get("starting_after")
        .and_then(|cursor| {
            records
                .iter()
                .position(|r| r["id"].as_str() == Some(cursor))
        })
        .map_or(0, |p| p + 1);
    let page: Vec<Value> = records.iter().skip(start).take(limit).cloned().collect();
    if lose {
        return rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    axum::Json(json!({
        "data": { plural: page },
        "pageInfo": {
            "hasNextPage": start + page.len() < records.len(),
            "startCursor": page.first().map(|r| r["id"].clone()),
            "endCursor": page.last().map(|r| r["id"].clone()),
        },
        "totalCount": records.len(),
    }))
    .into_response()
}

async fn rest_get(
    State(state): State<Shared>,
    Path((plural, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (workspace, object, _) = match rest_prelude(&state, &headers, "GET /rest", &plural).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let records = state.lock().unwrap().records(&workspace, &plural);
    match records
        .into_iter()
        .find(|r| r["id"].as_str() == Some(id.as_str()))
    {
        Some(record) => {
            axum::Json(json!({ "data": { object.name_singular: record } })).into_response()
        }
        None => rest_error(StatusCode::NOT_FOUND, "Record not found"),
    }
}

async fn rest_create(
    State(state): State<Shared>,
    Path(plural): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (workspace, object, lose) =
        match rest_prelude(&state, &headers, "POST /rest", &plural).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let Ok(record) = serde_json::from_slice::<Value>(&body) else {
        return rest_error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let upsert = query.get("upsert").is_some_and(|u| u == "true");
    let saved = state
        .lock()
        .unwrap()
        .save_records(&workspace, &object, vec![record], upsert);
    match saved {
        Ok(_) if lose => rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        Ok(mut saved) => axum::Json(json!({ "data": {
            format!("create{}", capitalized(&object.name_singular)): saved.pop()
        } }))
        .into_response(),
        Err(message) => rest_error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn rest_batch(
    State(state): State<Shared>,
    Path(plural): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (workspace, object, lose) =
        match rest_prelude(&state, &headers, "POST /rest/batch", &plural).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let Ok(Value::Array(records)) = serde_json::from_slice::<Value>(&body) else {
        return rest_error(StatusCode::BAD_REQUEST, "body must be a JSON array");
    };
    if records.len() > 60 {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "Maximum number of records to upsert is 60",
        );
    }
    let upsert = query.get("upsert").is_some_and(|u| u == "true");
    let saved = state
        .lock()
        .unwrap()
        .save_records(&workspace, &object, records, upsert);
    match saved {
        Ok(_) if lose => rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        Ok(saved) => axum::Json(json!({ "data": {
            format!("create{}", capitalized(&object.name_plural)): saved
        } }))
        .into_response(),
        Err(message) => rest_error(StatusCode::BAD_REQUEST, &message),
    }
}

impl FakeTwenty {
    /// Creates (or with `upsert`, updates the record matching on `id` or a unique field) each record.
    fn save_records(
        &mut self,
        workspace: &str,
        object: &Object,
        records: Vec<Value>,
        upsert: bool,
    ) -> Result<Vec<Value>, String> {
        let unique: Vec<String> = object
            .fields
            .iter()
            .filter(|f| f.is_unique)
            .map(|f| f.name.clone())
            .collect();
        let ws = self
            .workspace_mut(workspace)
            .ok_or_else(|| "no workspace".to_owned())?;
        let stored = ws.records.entry(object.name_plural.clone()).or_default();
        let mut saved = vec![];
        for mut record in records {
            if !record.is_object() {
                return Err("a record must be an object".into());
            }
            let matching: Vec<usize> = stored
                .iter()
                .enumerate()
                .filter(|(_, existing)| {
                    (record["id"].is_string() && existing["id"] == record["id"])
                        || unique
                            .iter()
                            .any(|u| !record[u].is_null() && existing[u] == record[u])
                })
                .map(|(i, _)| i)
                .collect();
            match (matching.as_slice(), upsert) {
                ([], _) => {
                    if !record["id"].is_string() {
                        record["id"] = json!(uuid::Uuid::new_v4().to_string());
                    }
                    record["createdAt"] = json!("2026-01-01T00:00:00.000Z");
                    stored.push(record.clone());
                    saved.push(record);
                }
                ([index], true) => {
                    let existing = &mut stored[*index];
                    if let (Some(into), Some(from)) = (existing.as_object_mut(), record.as_object())
                    {
                        for (key, value) in from {
                            if key != "id" {
                                into.insert(key.clone(), value.clone());
                            }
                        }
                    }
                    saved.push(existing.clone());
                }
                ([_], false) => {
                    return Err("duplicate key value violates unique constraint".into());
                }
                _ => return Err("Multiple records found for upsert".into()),
            }
        }
        Ok(saved)
    }
}
