//! What tenants may reach through the proxy. Twenty's API key acts with the Admin role, so the proxy itself
//! keeps tenants away from what would let them escape it or change how the control plane reaches their
//! workspace: API keys, webhooks, roles and permissions, and the metadata API (reference §3.3, §3.4, §6).
//! Everything here fails closed: what cannot be understood is refused.

use super::graphql::{self, OperationKind};
use crate::access::Action;

/// Why a request is refused before it reaches Twenty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDenial {
    /// The path or an operation touches API keys, webhooks, roles or metadata.
    Forbidden(String),
    /// The path or body cannot be checked (dot segments, encoded slashes, unparsable GraphQL…).
    Invalid(String),
}

/// Checks the part of a REST path after `/rest/` (still percent-encoded, as received).
///
/// Dot segments and encoded separators are refused outright: the upstream URL would otherwise be normalised
/// into a path that was never checked (`people/../apiKeys`, `..%2Fmetadata`).
pub fn check_rest_path(tail: &str) -> Result<(), PolicyDenial> {
    if tail.is_empty() {
        return Err(PolicyDenial::Invalid("The path names no resource.".into()));
    }
    for raw in tail.split('/') {
        let segment = percent_decode(raw).ok_or_else(|| {
            PolicyDenial::Invalid("The path is not valid percent-encoded UTF-8.".into())
        })?;
        if segment == "." || segment == ".." || segment.contains(['/', '\\']) {
            return Err(PolicyDenial::Invalid(
                "The path contains dot segments or encoded separators.".into(),
            ));
        }
        if segment.chars().any(char::is_control) {
            return Err(PolicyDenial::Invalid(
                "The path contains control characters.".into(),
            ));
        }
        if segment.eq_ignore_ascii_case("metadata") || is_forbidden_name(&segment) {
            return Err(PolicyDenial::Forbidden(format!(
                "/rest/{tail} is not available through the CRM proxy."
            )));
        }
    }
    Ok(())
}

/// Checks a GraphQL request body: a JSON object `{"query": …}` or a batch (array) of them; every root field
/// of every operation in every document must be allowed. Answers what the body does to the CRM: `Read`
/// when every operation that runs is a query, else `Write` (mutations, subscriptions). The operation that runs
/// is the one `operationName` names when a document has several; without a name, all of them count.
pub fn check_graphql_body(body: &[u8]) -> Result<Action, PolicyDenial> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| PolicyDenial::Invalid("The GraphQL request is not JSON.".into()))?;
    let requests = match &json {
        serde_json::Value::Array(batch) => batch.iter().collect::<Vec<_>>(),
        single => vec![single],
    };
    if requests.is_empty() {
        return Err(PolicyDenial::Invalid("The GraphQL batch is empty.".into()));
    }
    let mut action = Action::Read;
    for request in requests {
        let query = request
            .get("query")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                PolicyDenial::Invalid("A GraphQL request has no query document.".into())
            })?;
        let operations = graphql::operations(query).map_err(|why| {
            PolicyDenial::Invalid(format!("The GraphQL document cannot be checked: {why}."))
        })?;
        if let Some(field) = operations
            .iter()
            .flat_map(|o| &o.fields)
            .find(|f| is_forbidden_name(f))
        {
            return Err(PolicyDenial::Forbidden(format!(
                "The GraphQL operation `{field}` is not available through the CRM proxy."
            )));
        }
        let name = request
            .get("operationName")
            .and_then(serde_json::Value::as_str);
        let runs: Vec<_> = match name {
            Some(name) if operations.len() > 1 => {
                let named: Vec<_> = operations
                    .iter()
                    .filter(|o| o.name.as_deref() == Some(name))
                    .collect();
                if named.is_empty() {
                    return Err(PolicyDenial::Invalid(format!(
                        "The GraphQL document has no operation named `{name}`."
                    )));
                }
                named
            }
            _ => operations.iter().collect(),
        };
        if runs.iter().any(|o| o.kind != OperationKind::Query) {
            action = Action::Write;
        }
    }
    Ok(action)
}

/// Names of API keys, webhooks, roles and permissions: `apiKeys`, `createApiKey`, `generateApiKeyToken`,
/// `webhooks`, `createOneWebhook`, `getRoles`, `updateWorkspaceMemberRole`, `upsertObjectPermissions`…
/// `apikey`/`webhook` match anywhere (case-insensitively); `role`/`permission` only as camelCase words, so
/// that names merely containing the letters (`controllers`) stay reachable.
fn is_forbidden_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.contains("apikey") || lower.contains("api-key") || lower.contains("api_key") {
        return true;
    }
    if lower.contains("webhook") {
        return true;
    }
    words(name).any(|word| {
        matches!(
            word.to_ascii_lowercase().as_str(),
            "role" | "roles" | "permission" | "permissions"
        )
    })
}

/// camelCase / PascalCase / kebab / snake words of a name: `updateWorkspaceMemberRole` → update, Workspace,
/// Member, Role.
fn words(name: &str) -> impl Iterator<Item = &str> {
    let mut starts = Vec::new();
    let bytes = name.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_alphanumeric() {
            if let Some(s) = start.take() {
                starts.push((s, i));
            }
            continue;
        }
        match start {
            None => start = Some(i),
            Some(s) if b.is_ascii_uppercase() && starts_word(bytes, i) => {
                starts.push((s, i));
                start = Some(i);
            }
            Some(_) => {}
        }
    }
    if let Some(s) = start {
        starts.push((s, bytes.len()));
    }
    starts.into_iter().map(move |(s, e)| &name[s..e])
}

/// Whether the uppercase letter at `i` (not the first of its word) starts a new word: after a lowercase
/// letter or digit (`apiKeys`), or as the last capital of an acronym followed by lowercase (`URLRoles`).
fn starts_word(bytes: &[u8], i: usize) -> bool {
    let previous = bytes[i - 1];
    if previous.is_ascii_lowercase() || previous.is_ascii_digit() {
        return true;
    }
    previous.is_ascii_uppercase() && bytes.get(i + 1).is_some_and(u8::is_ascii_lowercase)
}

/// `%XX`-decodes a path segment; `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden<T>(result: Result<T, PolicyDenial>) -> bool {
        matches!(result, Err(PolicyDenial::Forbidden(_)))
    }

    #[test]
    fn record_paths_pass() {
        for path in [
            "people",
            "people/0b1c7e1e-5b0a-4c7e-9f55-1d2a3b4c5d6e",
            "batch/companies",
            "restore/people",
            "people/duplicates",
            "controllers",
        ] {
            assert_eq!(check_rest_path(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn key_webhook_role_and_metadata_paths_are_forbidden() {
        for path in [
            "apiKeys",
            "apiKeys/1",
            "APIKEYS",
            "%61piKeys",
            "webhooks",
            "batch/webhooks",
            "restore/apiKeys",
            "roles",
            "metadata",
            "metadata/objects",
            "Metadata/fields",
            "open-api/metadata",
        ] {
            assert!(forbidden(check_rest_path(path)), "{path}");
        }
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_invalid() {
        for path in [
            "people/../apiKeys",
            "..",
            "%2e%2e/metadata",
            "people%2F..%2Fmetadata",
            "people%5c..",
            "bad%zz",
            "",
        ] {
            assert!(
                matches!(check_rest_path(path), Err(PolicyDenial::Invalid(_))),
                "{path}"
            );
        }
    }

    fn body(query: &str) -> Vec<u8> {
        serde_json::json!({ "query": query })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn record_operations_pass_as_reads_or_writes() {
        for (query, action) in [
            ("{ people { edges { node { id } } } }", Action::Read),
            (
                "query People($n: Int = 5) { people(first: $n) { edges { node { id roles: name } } } }",
                Action::Read,
            ),
            (
                "mutation { createPeople(data: [{name: {firstName: \"apiKeys\"}}], upsert: true) { id } }",
                Action::Write,
            ),
            ("subscription { onPeople { id } }", Action::Write),
            (
                "query { ...F } fragment F on Query { companies { totalCount } }",
                Action::Read,
            ),
            (
                "query A { people { id } } mutation B { deletePerson(id: \"1\") { id } }",
                Action::Write,
            ),
        ] {
            assert_eq!(check_graphql_body(&body(query)), Ok(action), "{query}");
        }
    }

    #[test]
    fn the_named_operation_decides() {
        let document = "query A { people { id } } mutation B { deletePerson(id: \"1\") { id } }";
        let named = |name: &str| {
            let body = serde_json::json!({ "query": document, "operationName": name });
            check_graphql_body(body.to_string().as_bytes())
        };
        assert_eq!(named("A"), Ok(Action::Read));
        assert_eq!(named("B"), Ok(Action::Write));
        assert!(matches!(named("C"), Err(PolicyDenial::Invalid(_))));
        let batch = serde_json::json!([{ "query": "{ people { id } }" }, { "query": "mutation { createNote { id } }" }]);
        assert_eq!(
            check_graphql_body(batch.to_string().as_bytes()),
            Ok(Action::Write)
        );
    }

    #[test]
    fn key_webhook_and_role_operations_are_forbidden() {
        for query in [
            "{ apiKeys { id } }",
            "query { x: apiKeys { id } }",
            "mutation { createApiKey(input: {name: \"x\"}) { id } }",
            "mutation { generateApiKeyToken(apiKeyId: \"1\", expiresAt: \"2100\") { token } }",
            "mutation M { createOneWebhook(input: {}) { id } }",
            "query { getRoles { id } }",
            "mutation { updateWorkspaceMemberRole(workspaceMemberId: \"1\", roleId: \"2\") { id } }",
            "mutation { upsertObjectPermissions(input: {}) { id } }",
            "query { ...F } fragment F on Query { webhooks { id } }",
            "query { ... on Query { apiKeys { id } } }",
            "query { people { id } } mutation { revokeApiKey(input: {id: \"1\"}) { id } }",
        ] {
            assert!(forbidden(check_graphql_body(&body(query))), "{query}");
        }
        let batch = serde_json::json!([{ "query": "{ people { id } }" }, { "query": "{ webhooks { id } }" }]);
        assert!(forbidden(check_graphql_body(batch.to_string().as_bytes())));
    }

    #[test]
    fn uncheckable_bodies_are_invalid() {
        for raw in [
            &b"query { apiKeys { id } }"[..],
            b"{}",
            b"[]",
            br#"{"query": 5}"#,
            br#"{"extensions": {"persistedQuery": {"sha256Hash": "abc"}}}"#,
            br#"{"query": "{ people { id "}"#,
        ] {
            assert!(
                matches!(check_graphql_body(raw), Err(PolicyDenial::Invalid(_))),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn words_split_camel_case() {
        assert_eq!(
            words("updateWorkspaceMemberRole").collect::<Vec<_>>(),
            ["update", "Workspace", "Member", "Role"]
        );
        assert_eq!(words("open-api").collect::<Vec<_>>(), ["open", "api"]);
        assert_eq!(words("URLRoles").collect::<Vec<_>>(), ["URL", "Roles"]);
    }
}
