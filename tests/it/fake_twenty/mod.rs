//! A fake Twenty for every CRM test: `POST /metadata` and `POST /graphql`, the REST data API (`/rest/*`) and
//! `GET /client-config`, on one loopback port.
//!
//! REST records of notes, tasks, opportunities and their targets are checked field by field against those
//! objects as Twenty defines them (`rest::check_record`), and PATCH, DELETE, `filter` (`eq`, `in`) and `order_by`
//! are served.
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

mod flags;
mod graphql;
mod metadata;
mod objects;
mod rest;
mod validation;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::twenty_graphql::{self, TwentySchema, edit};
use graphql::{graphql_endpoint, metadata_endpoint};
use rest::{rest_batch, rest_create, rest_delete, rest_get, rest_list, rest_update};

pub(crate) use validation::{option_errors, with_option_ids};

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
    /// The last `createdAt`/`updatedAt` handed out (each one is later than the one before, as Twenty's
    /// millisecond timestamps are in practice).
    clock: Option<time::OffsetDateTime>,
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
            clock: None,
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
            .route(
                "/rest/{plural}/{id}",
                get(rest_get).patch(rest_update).delete(rest_delete),
            )
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

    /// A timestamp as Twenty writes them (`2026-01-02T03:04:05.678Z`), later than every one before.
    pub(crate) fn now(&mut self) -> String {
        let mut now = time::OffsetDateTime::now_utc();
        now = now
            .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now);
        if let Some(last) = self.clock
            && now <= last
        {
            now = last + Duration::from_millis(1);
        }
        self.clock = Some(now);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond()
        )
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

    fn token(&self, token: &str) -> Option<&Token> {
        let meaning = self.tokens.get(token)?;
        if let Token::ApiKey { key, .. } = meaning
            && self.api_keys.iter().any(|k| k.id == *key && k.revoked)
        {
            return None;
        }
        Some(meaning)
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
