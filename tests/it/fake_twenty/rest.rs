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
    let mut records: Vec<Value> = state
        .lock()
        .unwrap()
        .records(&workspace, &plural)
        .into_iter()
        .filter(|r| r["deletedAt"].is_null())
        .collect();
    if let Some(filter) = query.get("filter") {
        let conditions = match parse_filter(filter) {
            Ok(conditions) => conditions,
            Err(message) => return rest_error(StatusCode::BAD_REQUEST, &message),
        };
        records.retain(|r| conditions.iter().all(|c| c.matches(r)));
    }
    if let Some(order_by) = query.get("order_by") {
        let mut keys = vec![];
        for part in order_by.split(',') {
            let (field, direction) = match part.split_once('[') {
                Some((field, rest)) => (field, rest.trim_end_matches(']')),
                None => (part, "AscNullsFirst"),
            };
            if !DIRECTIONS.contains(&direction) {
                return rest_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Order by direction '{direction}' is invalid"),
                );
            }
            keys.push((field.to_owned(), direction.starts_with("Desc")));
        }
        // Twenty appends `id` to every ordering.
        keys.push(("id".into(), false));
        records.sort_by(|a, b| {
            for (field, descending) in &keys {
                let (x, y) = (sort_key(&a[field]), sort_key(&b[field]));
                let ordering = if *descending { y.cmp(&x) } else { x.cmp(&y) };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
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

const DIRECTIONS: [&str; 4] = [
    "AscNullsFirst",
    "AscNullsLast",
    "DescNullsFirst",
    "DescNullsLast",
];

/// Values compare as text (Twenty's timestamps are all of one format, so that orders them in time).
fn sort_key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One `field[comparator]:value` of a REST `filter` (only what Wosool sends: `eq` and `in`).
struct Condition {
    field: String,
    values: Vec<String>,
}

impl Condition {
    fn matches(&self, record: &Value) -> bool {
        record[&self.field]
            .as_str()
            .is_some_and(|v| self.values.iter().any(|want| want == v))
    }
}

/// `a[eq]:"x",b[in]:["y","z"]` (top-level commas are AND).
fn parse_filter(filter: &str) -> Result<Vec<Condition>, String> {
    let invalid = || format!("Invalid filter: {filter}");
    let mut parts = vec![];
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    for (i, c) in filter.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' | '(' if !quoted => depth += 1,
            ']' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&filter[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&filter[start..]);
    parts
        .into_iter()
        .map(|part| {
            let (field, rest) = part.split_once('[').ok_or_else(invalid)?;
            let (comparator, value) = rest.split_once("]:").ok_or_else(invalid)?;
            let values = match comparator {
                "eq" => vec![value.trim_matches('"').to_owned()],
                "in" => serde_json::from_str::<Vec<String>>(value).map_err(|_| invalid())?,
                _ => return Err(format!("Unsupported comparator {comparator} (fake Twenty)")),
            };
            Ok(Condition {
                field: field.to_owned(),
                values,
            })
        })
        .collect()
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
        Some(record) if record["deletedAt"].is_null() => {
            axum::Json(json!({ "data": { object.name_singular: record } })).into_response()
        }
        // Twenty's REST layer answers RECORD_NOT_FOUND as a BadRequestException.
        _ => rest_error(StatusCode::BAD_REQUEST, "Record not found"),
    }
}

/// `PATCH /rest/{plural}/{id}`: a partial update, checked like a create.
pub(super) async fn rest_update(
    State(state): State<Shared>,
    Path((plural, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (workspace, object, lose) =
        match rest_prelude(&state, &headers, "PATCH /rest", &plural).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let Ok(Value::Object(update)) = serde_json::from_slice::<Value>(&body) else {
        return rest_error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    let mut fake = state.lock().unwrap();
    let update = match check_record(&object, Value::Object(update)) {
        Ok(update) => update,
        Err(message) => return rest_error(StatusCode::BAD_REQUEST, &message),
    };
    let now = fake.now();
    let Some(stored) = fake
        .workspace_mut(&workspace)
        .and_then(|ws| ws.records.get_mut(&plural))
        .and_then(|records| {
            records
                .iter_mut()
                .find(|r| r["id"].as_str() == Some(id.as_str()) && r["deletedAt"].is_null())
        })
    else {
        return rest_error(StatusCode::BAD_REQUEST, "Record not found");
    };
    if let (Some(into), Some(from)) = (stored.as_object_mut(), update.as_object()) {
        for (key, value) in from {
            if key != "id" {
                into.insert(key.clone(), value.clone());
            }
        }
        into.insert("updatedAt".into(), json!(now));
    }
    let saved = stored.clone();
    if lose {
        return rest_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    axum::Json(json!({ "data": {
        format!("update{}", capitalized(&object.name_singular)): saved
    } }))
    .into_response()
}

/// `DELETE /rest/{plural}/{id}`: a soft delete (`deletedAt` set; lists and reads skip the record).
pub(super) async fn rest_delete(
    State(state): State<Shared>,
    Path((plural, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (workspace, object, _) = match rest_prelude(&state, &headers, "DELETE /rest", &plural).await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut fake = state.lock().unwrap();
    let now = fake.now();
    let Some(stored) = fake
        .workspace_mut(&workspace)
        .and_then(|ws| ws.records.get_mut(&plural))
        .and_then(|records| {
            records
                .iter_mut()
                .find(|r| r["id"].as_str() == Some(id.as_str()) && r["deletedAt"].is_null())
        })
    else {
        return rest_error(StatusCode::BAD_REQUEST, "Record not found");
    };
    stored["deletedAt"] = json!(now);
    axum::Json(json!({ "data": {
        format!("delete{}", capitalized(&object.name_singular)): { "id": id }
    } }))
    .into_response()
}

/// Objects whose records are checked field by field, as Twenty's data argument processor does: the
/// standard activity objects Wosool writes. (Other objects take what the sync sends, unchecked.)
const CHECKED_OBJECTS: [&str; 5] = ["note", "task", "opportunity", "noteTarget", "taskTarget"];

/// Refuses what Twenty refuses in a record of a checked object (unknown fields, SELECT values that are not
/// options, malformed UUIDs, dates, rich text and currency), and converts `bodyV2.markdown` into a
/// `blocknote` document as Twenty's server does. Returns the record as stored.
pub(super) fn check_record(object: &Object, mut record: Value) -> Result<Value, String> {
    if !CHECKED_OBJECTS.contains(&object.name_singular.as_str()) {
        return Ok(record);
    }
    let Some(fields) = record.as_object_mut() else {
        return Err("a record must be an object".into());
    };
    for (key, value) in fields.iter_mut() {
        let Some(field) = object.fields.iter().find(|f| f.name == *key) else {
            return Err(format!(
                "Object {} doesn't have any \"{key}\" field.",
                object.name_singular
            ));
        };
        let message = format!("Invalid value {} for field \"{key}\"", inspect(value));
        let invalid = || message.clone();
        if value.is_null() {
            continue;
        }
        match field.field_type.as_str() {
            "TEXT" if !value.is_string() => return Err(invalid()),
            "UUID"
                if value
                    .as_str()
                    .and_then(|v| uuid::Uuid::parse_str(v).ok())
                    .is_none() =>
            {
                return Err(invalid());
            }
            "SELECT" => {
                let allowed = field
                    .options
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|o| o["value"] == *value);
                if !allowed {
                    return Err(invalid());
                }
            }
            "DATE_TIME" => {
                let parsed = value.as_str().and_then(|v| {
                    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
                if parsed.is_none() {
                    return Err(invalid());
                }
            }
            "CURRENCY" => {
                let ok = value.as_object().is_some_and(|c| {
                    c.iter().all(|(k, v)| match k.as_str() {
                        "amountMicros" => v.is_null() || v.is_number() || v.is_string(),
                        "currencyCode" => v.is_null() || v.is_string(),
                        _ => false,
                    })
                });
                if !ok {
                    return Err(invalid());
                }
            }
            "RICH_TEXT" => {
                let Some(rich) = value.as_object_mut() else {
                    return Err(invalid());
                };
                if rich.keys().any(|k| k != "markdown" && k != "blocknote") {
                    return Err(invalid());
                }
                let markdown = rich
                    .get("markdown")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let blocknote = rich.get("blocknote").cloned().unwrap_or(Value::Null);
                if let (Some(markdown), Value::Null) = (markdown, blocknote) {
                    let document = json!([{ "id": uuid::Uuid::new_v4().to_string(), "type": "paragraph",
                        "props": {}, "content": [{ "type": "text", "text": markdown, "styles": {} }],
                        "children": [] }]);
                    rich.insert("blocknote".into(), json!(document.to_string()));
                }
            }
            _ => {}
        }
    }
    Ok(record)
}

/// How Node's `util.inspect` prints a JSON value in Twenty's messages (strings in single quotes).
fn inspect(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
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
        let records = records
            .into_iter()
            .map(|record| check_record(object, record))
            .collect::<Result<Vec<_>, _>>()?;
        let stamps: Vec<String> = records.iter().map(|_| self.now()).collect();
        let ws = self
            .workspace_mut(workspace)
            .ok_or_else(|| "no workspace".to_owned())?;
        let stored = ws.records.entry(object.name_plural.clone()).or_default();
        let mut saved = vec![];
        for (mut record, now) in records.into_iter().zip(stamps) {
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
                    record["createdAt"] = json!(now);
                    record["updatedAt"] = json!(now);
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
                        into.insert("updatedAt".into(), json!(now));
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
