//! REST: the data API (`/rest/*`): knobs, throttling and API-key authentication of each call, then records
//! listed, read, created and batch-upserted.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::graphql::bearer;
use super::{FakeTwenty, Object, Shared};

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

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

pub(super) async fn rest_list(
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

pub(super) async fn rest_get(
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

pub(super) async fn rest_create(
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

pub(super) async fn rest_batch(
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
