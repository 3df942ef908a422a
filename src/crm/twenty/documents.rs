//! Every GraphQL document Wosool sends to Twenty, in one place, each with the endpoint it goes to and the
//! condition under which it is sent ([`Gate`], decided by [`Capabilities`](super::Capabilities) from the
//! server's own introspection). `scripts/test` validates each document whose gate holds on the pinned Twenty
//! version against that version's published schema (`tests/it/crm_documents.rs`); a document whose gate
//! does not hold there is for another version and is checked against the capability that gates it.
//!
//! Rules that keep documents valid on every version: every non-null argument is passed explicitly (the
//! published client drops default values, and the real server accepts an explicit value whatever its
//! default), and nothing is selected that an older or newer version lacks unless a gate says so.

use super::client::Endpoint;

/// When a document is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// On every supported version.
    Always,
    /// Where the `/metadata` mutation exists.
    Mutation(&'static str),
    /// Where the mutation exists and takes the argument.
    MutationTakes(&'static str, &'static str),
    /// Where the mutation exists without the argument (an older shape).
    MutationLacks(&'static str, &'static str),
    /// Where the first mutation exists and the second does not (a fallback for older versions).
    MutationInsteadOf(&'static str, &'static str),
    /// Where `User` has the field.
    UserField(&'static str),
    /// Where `User` lacks the field (an older shape).
    UserLacks(&'static str),
}

/// A GraphQL document: `operation` is its (first) root field, used for metrics and error messages.
#[derive(Debug, Clone, Copy)]
pub struct Document {
    pub operation: &'static str,
    pub endpoint: Endpoint,
    pub text: &'static str,
    pub gate: Gate,
}

const fn metadata(operation: &'static str, text: &'static str, gate: Gate) -> Document {
    Document {
        operation,
        endpoint: Endpoint::Metadata,
        text,
        gate,
    }
}

/// What the server offers (reference intro: introspect, do not trust version numbers).
pub const CAPABILITIES: Document = metadata(
    "__schema",
    "query Capabilities {
  __schema {
    mutationType { fields { name args { name } } }
    queryType { fields { name args { name } } }
  }
  createApiKeyInput: __type(name: \"CreateApiKeyInput\") { inputFields { name } }
  user: __type(name: \"User\") { fields { name } }
}",
    Gate::Always,
);

// ---- provisioning (reference §3.1) ----------------------------------------------------------------------------

pub const SIGN_UP: Document = metadata(
    "signUp",
    "mutation SignUp($email: String!, $password: String!) {
  signUp(email: $email, password: $password) {
    tokens { accessOrWorkspaceAgnosticToken { token } }
  }
}",
    Gate::Always,
);

pub const SIGN_IN: Document = metadata(
    "signIn",
    "mutation SignIn($email: String!, $password: String!) {
  signIn(email: $email, password: $password) {
    tokens { accessOrWorkspaceAgnosticToken { token } }
  }
}",
    Gate::Mutation("signIn"),
);

pub const LOGIN_TOKEN_WITH_ORIGIN: Document = metadata(
    "getLoginTokenFromCredentials",
    "mutation LoginToken($email: String!, $password: String!, $origin: String!) {
  getLoginTokenFromCredentials(email: $email, password: $password, origin: $origin) { loginToken { token } }
}",
    Gate::MutationTakes("getLoginTokenFromCredentials", "origin"),
);

/// v1.x: no `origin`.
pub const LOGIN_TOKEN: Document = metadata(
    "getLoginTokenFromCredentials",
    "mutation LoginToken($email: String!, $password: String!) {
  getLoginTokenFromCredentials(email: $email, password: $password) { loginToken { token } }
}",
    Gate::MutationLacks("getLoginTokenFromCredentials", "origin"),
);

pub const AUTH_TOKENS: Document = metadata(
    "getAuthTokensFromLoginToken",
    "mutation AuthTokens($loginToken: String!, $origin: String!) {
  getAuthTokensFromLoginToken(loginToken: $loginToken, origin: $origin) {
    tokens { accessOrWorkspaceAgnosticToken { token } }
  }
}",
    Gate::Always,
);

pub const NEW_WORKSPACE_WITH_INPUT: Document = metadata(
    "signUpInNewWorkspace",
    "mutation NewWorkspace($input: SignUpInNewWorkspaceInput) {
  signUpInNewWorkspace(input: $input) { loginToken { token } workspace { id workspaceUrls { subdomainUrl } } }
}",
    Gate::MutationTakes("signUpInNewWorkspace", "input"),
);

/// v1.x: no argument at all.
pub const NEW_WORKSPACE: Document = metadata(
    "signUpInNewWorkspace",
    "mutation NewWorkspace {
  signUpInNewWorkspace { loginToken { token } workspace { id workspaceUrls { subdomainUrl } } }
}",
    Gate::MutationLacks("signUpInNewWorkspace", "input"),
);

/// The workspaces the owner can sign in to (v2.x): how a run whose `signUpInNewWorkspace` answer was lost
/// finds the workspace it created.
pub const AVAILABLE_WORKSPACES: Document = metadata(
    "currentUser",
    "query AvailableWorkspaces {
  currentUser { id availableWorkspaces { availableWorkspacesForSignIn { id workspaceUrls { subdomainUrl } } } }
}",
    Gate::UserField("availableWorkspaces"),
);

/// v1.x: memberships with their workspace (`UserWorkspace.workspace` is gone in v2.x).
pub const USER_WORKSPACES: Document = metadata(
    "currentUser",
    "query UserWorkspaces {
  currentUser { id workspaces { workspace { id workspaceUrls { subdomainUrl } } } }
}",
    Gate::UserLacks("availableWorkspaces"),
);

pub const ACTIVATE: Document = metadata(
    "activateWorkspace",
    "mutation Activate($data: ActivateWorkspaceInput!) {
  activateWorkspace(data: $data) { id activationStatus }
}",
    Gate::Always,
);

pub const CURRENT_WORKSPACE: Document = metadata(
    "currentUser",
    "query CurrentWorkspace {
  currentUser { id currentWorkspace { id activationStatus } }
}",
    Gate::Always,
);

// ---- onboarding (reference §3.2) -------------------------------------------------------------------------------

pub const ONBOARDING_STATUS: Document = metadata(
    "currentUser",
    "query Onboarding {
  currentUser { id onboardingStatus workspaceMember { id } }
}",
    Gate::Always,
);

pub const SKIP_SYNC_EMAIL: Document = metadata(
    "skipSyncEmailOnboardingStep",
    "mutation { skipSyncEmailOnboardingStep(isAutoSkipped: true) { success } }",
    Gate::MutationTakes("skipSyncEmailOnboardingStep", "isAutoSkipped"),
);

/// Before `isAutoSkipped` existed.
pub const SKIP_SYNC_EMAIL_NO_ARGS: Document = metadata(
    "skipSyncEmailOnboardingStep",
    "mutation { skipSyncEmailOnboardingStep { success } }",
    Gate::MutationLacks("skipSyncEmailOnboardingStep", "isAutoSkipped"),
);

/// Newer frontends between v1.x and v2.x; v2.43 has no such mutation.
pub const SKIP_INVITE_TEAM: Document = metadata(
    "skipInviteTeamOnboardingStep",
    "mutation { skipInviteTeamOnboardingStep { success } }",
    Gate::Mutation("skipInviteTeamOnboardingStep"),
);

/// INVITE_TEAM cleared by inviting nobody (v1.x and v2.43).
pub const SEND_NO_INVITATIONS: Document = metadata(
    "sendInvitations",
    "mutation { sendInvitations(emails: []) { success } }",
    Gate::MutationInsteadOf("sendInvitations", "skipInviteTeamOnboardingStep"),
);

pub const SKIP_INSTALL_APPS: Document = metadata(
    "triggerInstallAppsOnboardingStep",
    "mutation {
  triggerInstallAppsOnboardingStep(universalIdentifiers: [], isAutoSkipped: true) { success }
}",
    Gate::Mutation("triggerInstallAppsOnboardingStep"),
);

pub const SKIP_BOOK_CALL: Document = metadata(
    "completeBookCallOnboardingStep",
    "mutation {
  completeBookCallOnboardingStep(hasBookedCall: false, isAutoSkipped: true) { success }
}",
    Gate::Mutation("completeBookCallOnboardingStep"),
);

/// v1.x's name for the booking step.
pub const SKIP_BOOK_ONBOARDING: Document = metadata(
    "skipBookOnboardingStep",
    "mutation { skipBookOnboardingStep { success } }",
    Gate::Mutation("skipBookOnboardingStep"),
);

/// Names the owner's workspace member (clears PROFILE_CREATION) where `/metadata` can (v2.x).
pub const NAME_MEMBER_SETTINGS: Document = metadata(
    "updateWorkspaceMemberSettings",
    "mutation NameMember($input: UpdateWorkspaceMemberSettingsInput!) {
  updateWorkspaceMemberSettings(input: $input)
}",
    Gate::Mutation("updateWorkspaceMemberSettings"),
);

/// Names the member through the workspace's records API (`/graphql`, a schema generated per workspace and not
/// published: checked by the fake's records endpoint, not against the `/metadata` schema).
pub const NAME_MEMBER_RECORD: Document = Document {
    operation: "updateWorkspaceMember",
    endpoint: Endpoint::Graphql,
    text: "mutation NameMember($id: UUID!, $data: WorkspaceMemberUpdateInput!) {
  updateWorkspaceMember(id: $id, data: $data) { id }
}",
    gate: Gate::Always,
};

// ---- roles and API keys (reference §1.2) ----------------------------------------------------------------------

pub const ROLES: Document = metadata(
    "getRoles",
    "query Roles { getRoles { id label } }",
    Gate::Always,
);

pub const CREATE_API_KEY: Document = metadata(
    "createApiKey",
    "mutation CreateApiKey($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { id name expiresAt }
}",
    Gate::Always,
);

pub const API_KEYS: Document = metadata(
    "apiKeys",
    "query ApiKeys { apiKeys { id name expiresAt } }",
    Gate::Always,
);

pub const REVOKE_API_KEY: Document = metadata(
    "revokeApiKey",
    "mutation RevokeApiKey($input: RevokeApiKeyInput!) {
  revokeApiKey(input: $input) { id }
}",
    Gate::Mutation("revokeApiKey"),
);

pub const GENERATE_API_KEY_TOKEN: Document = metadata(
    "generateApiKeyToken",
    "mutation GenerateToken($apiKeyId: UUID!, $expiresAt: String!) {
  generateApiKeyToken(apiKeyId: $apiKeyId, expiresAt: $expiresAt) { token }
}",
    Gate::Always,
);

// ---- deletion --------------------------------------------------------------------------------------------------

/// Deletes the workspace of the calling (workspace access) token, with its records.
pub const DELETE_WORKSPACE: Document = metadata(
    "deleteCurrentWorkspace",
    "mutation DeleteWorkspace { deleteCurrentWorkspace { id } }",
    Gate::Always,
);

/// Deletes the calling user (the tenant's owner user, once its workspace is gone).
pub const DELETE_USER: Document = metadata(
    "deleteUser",
    "mutation DeleteUser { deleteUser { id } }",
    Gate::Mutation("deleteUser"),
);

// ---- data model (reference §2.5, §3.4) ------------------------------------------------------------------------

/// Objects with their fields. `isCustom` is gone in v2.x (`isSystem` marks Twenty's own); filters are passed
/// explicitly (non-null arguments).
pub const LIST_OBJECTS: Document = metadata(
    "objects",
    "query Objects {
  objects(paging: { first: 1000 }, filter: {}) { edges { node {
    id nameSingular namePlural isActive isSystem
    fields(paging: { first: 1000 }, filter: {}) { edges { node { id name type isActive isSystem isUnique options defaultValue } } }
  } } }
}",
    Gate::Always,
);

pub const CREATE_OBJECT: Document = metadata(
    "createOneObject",
    "mutation CreateOneObject($input: CreateOneObjectInput!) {
  createOneObject(input: $input) { id nameSingular namePlural }
}",
    Gate::Always,
);

pub const CREATE_FIELD: Document = metadata(
    "createOneField",
    "mutation CreateOneField($input: CreateOneFieldMetadataInput!) {
  createOneField(input: $input) { id name type }
}",
    Gate::Always,
);

pub const UPDATE_FIELD: Document = metadata(
    "updateOneField",
    "mutation UpdateOneField($input: UpdateOneFieldMetadataInput!) {
  updateOneField(input: $input) { id name type }
}",
    Gate::Always,
);

/// Every document, for the schema check.
pub const ALL: &[Document] = &[
    CAPABILITIES,
    SIGN_UP,
    SIGN_IN,
    LOGIN_TOKEN_WITH_ORIGIN,
    LOGIN_TOKEN,
    AUTH_TOKENS,
    NEW_WORKSPACE_WITH_INPUT,
    NEW_WORKSPACE,
    AVAILABLE_WORKSPACES,
    USER_WORKSPACES,
    ACTIVATE,
    CURRENT_WORKSPACE,
    ONBOARDING_STATUS,
    SKIP_SYNC_EMAIL,
    SKIP_SYNC_EMAIL_NO_ARGS,
    SKIP_INVITE_TEAM,
    SEND_NO_INVITATIONS,
    SKIP_INSTALL_APPS,
    SKIP_BOOK_CALL,
    SKIP_BOOK_ONBOARDING,
    NAME_MEMBER_SETTINGS,
    NAME_MEMBER_RECORD,
    ROLES,
    CREATE_API_KEY,
    API_KEYS,
    REVOKE_API_KEY,
    GENERATE_API_KEY_TOKEN,
    DELETE_WORKSPACE,
    DELETE_USER,
    LIST_OBJECTS,
    CREATE_OBJECT,
    CREATE_FIELD,
    UPDATE_FIELD,
];
