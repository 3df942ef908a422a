//! GraphQL: `POST /metadata` and `POST /graphql` plumbing (knobs, validation and execution against the served
//! schema), Twenty's error bodies, and the `/graphql` records resolver.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::flags::{mirror_new_flags, read_flags};
use super::{FakeTwenty, Shared, Token};
use crate::twenty_graphql::{Answer, records_root_fields};

pub(super) type GqlResult = Result<Value, Value>;

/// An error a Twenty resolver throws, as its error hook serialises it (HTTP 200, `data: null`): the
/// message, `extensions.code`, the exception's own code as `subCode` when it has one, and a
/// `userFriendlyMessage`.
pub(super) fn gql_error(message: &str, code: &str) -> Value {
    json!({ "message": message, "extensions": { "code": code, "userFriendlyMessage": message } })
}

pub(super) fn gql_error_with(message: &str, code: &str, sub_code: &str, friendly: &str) -> Value {
    json!({ "message": message, "extensions": {
        "subCode": sub_code, "userFriendlyMessage": friendly, "code": code,
    } })
}

pub(super) fn unauthenticated() -> Value {
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
pub(super) fn metadata_validation_failed(kind: &str, errors: &[(&str, String, Value)]) -> Value {
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

pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

pub(super) async fn metadata_endpoint(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    graphql_request(state, headers, body, Endpoint::Metadata).await
}

pub(super) async fn graphql_endpoint(
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

impl FakeTwenty {
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
