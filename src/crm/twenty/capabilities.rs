//! What the Twenty server we talk to offers, learned by introspecting `/metadata` (reference intro and §6
//! "Startup"): names and arguments drift between versions, so provisioning picks its call shapes from here
//! (`signUpInNewWorkspace` with or without `input`, `createApiKey` with or without `roleId`, which onboarding
//! mutations exist) instead of from a version number.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::client::{CallOptions, Endpoint, TwentyClient, TwentyError};

const INTROSPECTION: &str = "query Capabilities {
  __schema {
    mutationType { fields { name args { name } } }
    queryType { fields { name args { name } } }
  }
  createApiKeyInput: __type(name: \"CreateApiKeyInput\") { inputFields { name } }
}";

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

/// How the INVITE_TEAM onboarding step is cleared on this version (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteTeamStep {
    /// `skipInviteTeamOnboardingStep` (newer frontends).
    Skip,
    /// `sendInvitations(emails: [])` (v1.x).
    SendNoInvitations,
}

/// The root fields of `/metadata` and their argument names.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    mutations: HashMap<String, HashSet<String>>,
    queries: HashMap<String, HashSet<String>>,
    create_api_key_input: HashSet<String>,
}

impl Capabilities {
    /// Introspects `/metadata`.
    pub async fn introspect(client: &TwentyClient) -> Result<Self, TwentyError> {
        let data = client
            .graphql(
                Endpoint::Metadata,
                "__schema",
                INTROSPECTION,
                json!({}),
                None,
                CallOptions::IDEMPOTENT,
            )
            .await?;
        Self::from_introspection(&data)
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
        let create_api_key_input = data["createApiKeyInput"]["inputFields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|field| field["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            mutations: fields("mutationType")?,
            queries: fields("queryType")?,
            create_api_key_input,
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

    /// How to clear INVITE_TEAM, if this version can.
    pub fn invite_team_step(&self) -> Option<InviteTeamStep> {
        if self.has_mutation("skipInviteTeamOnboardingStep") {
            Some(InviteTeamStep::Skip)
        } else if self.has_mutation("sendInvitations") {
            Some(InviteTeamStep::SendNoInvitations)
        } else {
            None
        }
    }
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
        assert_eq!(newer.invite_team_step(), Some(InviteTeamStep::Skip));
        newer.require_provisioning().unwrap();

        let older = Capabilities::from_introspection(&schema(
            all_required(&[json!({ "name": "sendInvitations", "args": [{ "name": "emails" }] })]),
            json!([{ "name": "name" }, { "name": "expiresAt" }]),
        ))
        .unwrap();
        assert!(!older.sign_up_in_new_workspace_takes_input());
        assert!(!older.create_api_key_takes_role());
        assert_eq!(
            older.invite_team_step(),
            Some(InviteTeamStep::SendNoInvitations)
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
