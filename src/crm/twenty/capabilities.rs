//! What the Twenty server we talk to offers, learned by introspecting `/metadata` (reference intro and §6
//! "Startup"): names and arguments drift between versions, so provisioning picks its call shapes from here
//! (`signUpInNewWorkspace` with or without `input`, `createApiKey` with or without `roleId`, which onboarding
//! mutations exist) instead of from a version number.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::client::{CallOptions, TwentyClient, TwentyError};
use super::documents::{self, Gate};

/// Mutations provisioning cannot do without.
const REQUIRED_MUTATIONS: [&str; 7] = [
    "signUp",
    "signUpInNewWorkspace",
    "getLoginTokenFromCredentials",
    "getAuthTokensFromLoginToken",
    "activateWorkspace",
    "createApiKey",
    "generateApiKeyToken",
];
/// Queries provisioning cannot do without.
const REQUIRED_QUERIES: [&str; 2] = ["currentUser", "getRoles"];

/// The root fields of `/metadata` and their argument names.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    mutations: HashMap<String, HashSet<String>>,
    queries: HashMap<String, HashSet<String>>,
    create_api_key_input: HashSet<String>,
    user_fields: HashSet<String>,
    /// Not read from the server but assumed from the pinned version ([`Capabilities::pinned`]), until a
    /// workspace token lets us introspect.
    provisional: bool,
}

impl Capabilities {
    /// Introspects `/metadata`.
    /// Introspects `/metadata`, with `token` when one is at hand: in production Twenty refuses introspection
    /// to requests without a workspace (`NoSchemaIntrospectionCustomRule` unless `req.workspace` is set), so
    /// only a workspace access token or an API key is sure to work.
    pub async fn introspect(
        client: &TwentyClient,
        token: Option<&str>,
    ) -> Result<Self, TwentyError> {
        let data = client
            .document(
                &documents::CAPABILITIES,
                json!({}),
                token,
                CallOptions::IDEMPOTENT,
            )
            .await?;
        Self::from_introspection(&data)
    }

    /// What the pinned version (`config/twenty.version`) offers, for the steps before a workspace token
    /// exists when the server refuses anonymous introspection. `tests/it/crm_documents.rs` checks it against
    /// the version's published schema.
    pub fn pinned() -> Self {
        let table = |entries: &[(&str, &[&str])]| -> HashMap<String, HashSet<String>> {
            entries
                .iter()
                .map(|(name, args)| {
                    (
                        (*name).to_owned(),
                        args.iter().map(|a| (*a).to_owned()).collect(),
                    )
                })
                .collect()
        };
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect();
        Self {
            mutations: table(PINNED_MUTATIONS),
            queries: table(PINNED_QUERIES),
            create_api_key_input: names(PINNED_CREATE_API_KEY_INPUT),
            user_fields: names(PINNED_USER_FIELDS),
            provisional: true,
        }
    }

    /// Whether these are [`Capabilities::pinned`] rather than the server's own.
    pub fn is_provisional(&self) -> bool {
        self.provisional
    }

    /// Reads an introspection answer's `data`.
    pub fn from_introspection(data: &Value) -> Result<Self, TwentyError> {
        let fields = |kind: &str| -> Result<HashMap<String, HashSet<String>>, TwentyError> {
            let fields =
                data["__schema"][kind]["fields"]
                    .as_array()
                    .ok_or_else(|| TwentyError::Decode {
                        operation: "__schema",
                        message: format!("no {kind} fields in the introspection answer"),
                    })?;
            Ok(fields
                .iter()
                .filter_map(|field| {
                    let name = field["name"].as_str()?;
                    let args = field["args"]
                        .as_array()
                        .map(|args| {
                            args.iter()
                                .filter_map(|arg| arg["name"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    Some((name.to_owned(), args))
                })
                .collect())
        };
        let names = |list: &Value| -> HashSet<String> {
            list.as_array()
                .map(|fields| {
                    fields
                        .iter()
                        .filter_map(|field| field["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            mutations: fields("mutationType")?,
            queries: fields("queryType")?,
            create_api_key_input: names(&data["createApiKeyInput"]["inputFields"]),
            user_fields: names(&data["user"]["fields"]),
            provisional: false,
        })
    }

    pub fn has_mutation(&self, name: &str) -> bool {
        self.mutations.contains_key(name)
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.queries.contains_key(name)
    }

    /// Whether mutation `name` exists and takes argument `arg`.
    pub fn mutation_takes(&self, name: &str, arg: &str) -> bool {
        self.mutations
            .get(name)
            .is_some_and(|args| args.contains(arg))
    }

    /// Fails naming the first missing mutation or query provisioning needs.
    pub fn require_provisioning(&self) -> Result<(), TwentyError> {
        for name in REQUIRED_MUTATIONS {
            if !self.has_mutation(name) {
                return Err(TwentyError::MissingCapability(format!(
                    "the /metadata mutation {name}"
                )));
            }
        }
        for name in REQUIRED_QUERIES {
            if !self.has_query(name) {
                return Err(TwentyError::MissingCapability(format!(
                    "the /metadata query {name}"
                )));
            }
        }
        Ok(())
    }

    /// Newest `signUpInNewWorkspace(input: {displayName, subdomain})`; v1.x takes no argument and refuses one.
    pub fn sign_up_in_new_workspace_takes_input(&self) -> bool {
        self.mutation_takes("signUpInNewWorkspace", "input")
    }

    /// `getLoginTokenFromCredentials(…, origin)`: required in newer versions, absent in older ones.
    pub fn login_takes_origin(&self) -> bool {
        self.mutation_takes("getLoginTokenFromCredentials", "origin")
    }

    /// `CreateApiKeyInput.roleId`: required in newer versions, absent in older ones.
    pub fn create_api_key_takes_role(&self) -> bool {
        self.create_api_key_input.contains("roleId")
    }

    /// Whether `User` has field `name` (e.g. `availableWorkspaces`, v2.x).
    pub fn user_has(&self, name: &str) -> bool {
        self.user_fields.contains(name)
    }

    /// Whether a document with this gate is sent to this server.
    pub fn allows(&self, gate: Gate) -> bool {
        match gate {
            Gate::Always => true,
            Gate::Mutation(name) => self.has_mutation(name),
            Gate::MutationTakes(name, arg) => self.mutation_takes(name, arg),
            Gate::MutationLacks(name, arg) => {
                self.has_mutation(name) && !self.mutation_takes(name, arg)
            }
            Gate::MutationInsteadOf(name, newer) => {
                self.has_mutation(name) && !self.has_mutation(newer)
            }
            Gate::UserField(name) => self.user_has(name),
            Gate::UserLacks(name) => !self.user_has(name),
        }
    }

    /// The first of `candidates` this server is sent (documents of one step, newest shape first).
    pub fn pick(&self, candidates: &[documents::Document]) -> Option<documents::Document> {
        candidates.iter().copied().find(|doc| self.allows(doc.gate))
    }

    /// Root fields and argument names, for operators (`wosool crm status`).
    pub fn summary(&self) -> CapabilitySummary {
        let mut notable: Vec<&'static str> = NOTABLE
            .iter()
            .copied()
            .filter(|name| self.has_mutation(name) || self.has_query(name))
            .collect();
        notable.sort_unstable();
        CapabilitySummary {
            mutations: self.mutations.len(),
            queries: self.queries.len(),
            notable,
            sign_up_in_new_workspace_takes_input: self.sign_up_in_new_workspace_takes_input(),
            login_takes_origin: self.login_takes_origin(),
            create_api_key_takes_role: self.create_api_key_takes_role(),
            lists_available_workspaces: self.user_has("availableWorkspaces"),
            provisional: self.provisional,
        }
    }
}

/// The root fields of the pinned version's `/metadata` that provisioning and the data model use, with
/// their arguments (see [`Capabilities::pinned`]).
pub const PINNED_MUTATIONS: &[(&str, &[&str])] = &[
    (
        "signUp",
        &[
            "email",
            "password",
            "captchaToken",
            "locale",
            "verifyEmailRedirectPath",
        ],
    ),
    (
        "signIn",
        &[
            "email",
            "password",
            "captchaToken",
            "locale",
            "verifyEmailRedirectPath",
        ],
    ),
    (
        "getLoginTokenFromCredentials",
        &[
            "email",
            "password",
            "captchaToken",
            "locale",
            "verifyEmailRedirectPath",
            "origin",
        ],
    ),
    ("getAuthTokensFromLoginToken", &["loginToken", "origin"]),
    ("signUpInNewWorkspace", &["input"]),
    ("activateWorkspace", &["data"]),
    ("skipSyncEmailOnboardingStep", &["isAutoSkipped"]),
    ("sendInvitations", &["emails", "roleId"]),
    (
        "triggerInstallAppsOnboardingStep",
        &["universalIdentifiers", "isAutoSkipped"],
    ),
    (
        "completeBookCallOnboardingStep",
        &["hasBookedCall", "isAutoSkipped"],
    ),
    ("updateWorkspaceMemberSettings", &["input"]),
    ("createApiKey", &["input"]),
    ("generateApiKeyToken", &["apiKeyId", "expiresAt"]),
    ("revokeApiKey", &["input"]),
    ("createOneObject", &["input"]),
    ("createOneField", &["input"]),
    ("updateOneField", &["input"]),
    ("setEnterpriseKey", &["enterpriseKey"]),
    ("deleteCurrentWorkspace", &[]),
    ("deleteUser", &[]),
];
pub const PINNED_QUERIES: &[(&str, &[&str])] = &[
    ("currentUser", &[]),
    ("getRoles", &[]),
    ("apiKeys", &[]),
    ("objects", &["paging", "filter"]),
];
pub const PINNED_CREATE_API_KEY_INPUT: &[&str] = &["name", "expiresAt", "revokedAt", "roleId"];
pub const PINNED_USER_FIELDS: &[&str] = &[
    "id",
    "availableWorkspaces",
    "workspaces",
    "currentWorkspace",
    "onboardingStatus",
    "workspaceMember",
];

/// Root fields worth showing an operator: the optional ones provisioning adapts to.
const NOTABLE: [&str; 11] = [
    "signIn",
    "skipSyncEmailOnboardingStep",
    "skipInviteTeamOnboardingStep",
    "sendInvitations",
    "triggerInstallAppsOnboardingStep",
    "completeBookCallOnboardingStep",
    "skipBookOnboardingStep",
    "updateWorkspaceMemberSettings",
    "apiKeys",
    "revokeApiKey",
    "setEnterpriseKey",
];

/// What [`Capabilities::summary`] shows.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct CapabilitySummary {
    pub mutations: usize,
    pub queries: usize,
    pub notable: Vec<&'static str>,
    pub sign_up_in_new_workspace_takes_input: bool,
    pub login_takes_origin: bool,
    pub create_api_key_takes_role: bool,
    pub lists_available_workspaces: bool,
    /// Assumed from the pinned version (the server refused anonymous introspection).
    pub provisional: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(mutations: Value, api_key_input: Value) -> Value {
        json!({
            "__schema": {
                "mutationType": { "fields": mutations },
                "queryType": { "fields": [
                    { "name": "currentUser", "args": [] },
                    { "name": "getRoles", "args": [] },
                ] },
            },
            "createApiKeyInput": { "inputFields": api_key_input },
        })
    }

    fn all_required(extra: &[Value]) -> Value {
        let mut fields: Vec<Value> = REQUIRED_MUTATIONS
            .iter()
            .map(|name| json!({ "name": name, "args": [] }))
            .collect();
        fields.extend_from_slice(extra);
        Value::Array(fields)
    }

    #[test]
    fn argument_shapes_are_read_from_the_schema() {
        let newer = Capabilities::from_introspection(&schema(
            all_required(&[
                json!({ "name": "signUpInNewWorkspace", "args": [{ "name": "input" }] }),
                json!({ "name": "skipInviteTeamOnboardingStep", "args": [] }),
            ]),
            json!([{ "name": "name" }, { "name": "expiresAt" }, { "name": "roleId" }]),
        ))
        .unwrap();
        assert!(newer.sign_up_in_new_workspace_takes_input());
        assert!(newer.create_api_key_takes_role());
        let invite = [documents::SKIP_INVITE_TEAM, documents::SEND_NO_INVITATIONS];
        assert_eq!(
            newer.pick(&invite).map(|d| d.operation),
            Some("skipInviteTeamOnboardingStep")
        );
        newer.require_provisioning().unwrap();

        let older = Capabilities::from_introspection(&schema(
            all_required(&[json!({ "name": "sendInvitations", "args": [{ "name": "emails" }] })]),
            json!([{ "name": "name" }, { "name": "expiresAt" }]),
        ))
        .unwrap();
        assert!(!older.sign_up_in_new_workspace_takes_input());
        assert!(!older.create_api_key_takes_role());
        assert_eq!(
            older.pick(&invite).map(|d| d.operation),
            Some("sendInvitations")
        );
        let listing = [documents::AVAILABLE_WORKSPACES, documents::USER_WORKSPACES];
        assert_eq!(
            older.pick(&listing).map(|d| d.text),
            Some(documents::USER_WORKSPACES.text),
            "without User.availableWorkspaces"
        );
    }

    #[test]
    fn a_missing_mutation_is_named() {
        let fields: Vec<Value> = REQUIRED_MUTATIONS
            .iter()
            .filter(|name| **name != "generateApiKeyToken")
            .map(|name| json!({ "name": name, "args": [] }))
            .collect();
        let caps =
            Capabilities::from_introspection(&schema(Value::Array(fields), json!([]))).unwrap();
        let error = caps.require_provisioning().unwrap_err().to_string();
        assert!(error.contains("generateApiKeyToken"), "{error}");
    }
}
