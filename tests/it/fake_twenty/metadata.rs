//! The `/metadata` resolvers: sign-up, sign-in and the login/access tokens, workspaces and their onboarding
//! steps, workspace members, roles and API keys, and the dispatch of object and field mutations to `objects.rs`.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use super::graphql::{GqlResult, gql_error, gql_error_with, unauthenticated};
use super::objects::{object_json, standard_objects};
use super::{ApiKey, FakeTwenty, Token, User, Workspace};

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

    /// One root field of `/metadata`, with its coerced arguments (the document was validated against the
    /// schema before this is called: a root field that does not exist never gets here).
    pub(super) fn metadata_field(
        &mut self,
        name: &str,
        args: &Value,
        token: Option<&str>,
    ) -> GqlResult {
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
}
