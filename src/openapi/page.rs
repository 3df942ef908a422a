//! `GET /api/docs`: the document as one server-rendered page (askama, `templates/api_docs.html`): every
//! operation by tag with its access, parameters, request body and responses, then the schemas. Built from
//! the served JSON itself, so the page cannot say anything the document does not.

use askama::Template;
use serde_json::Value;

#[derive(Template)]
#[template(path = "api_docs.html")]
struct Page {
    title: String,
    version: String,
    description: String,
    tags: Vec<TagView>,
    schemes: Vec<(String, String)>,
    schemas: Vec<(String, String)>,
}

struct TagView {
    name: String,
    description: String,
    operations: Vec<OperationView>,
}

struct OperationView {
    method: String,
    path: String,
    id: String,
    summary: String,
    description: String,
    security: String,
    parameters: Vec<ParameterView>,
    body: Option<MediaView>,
    responses: Vec<ResponseView>,
}

struct ParameterView {
    name: String,
    location: String,
    required: bool,
    schema: SchemaView,
    description: String,
}

struct MediaView {
    content_type: String,
    schema: SchemaView,
}

struct ResponseView {
    status: String,
    description: String,
    media: Vec<MediaView>,
}

/// A schema: the name of the component it refers to (linked), or its JSON.
struct SchemaView {
    reference: Option<String>,
    json: String,
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn schema(value: &Value) -> SchemaView {
    match value["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => SchemaView {
            reference: Some(name.to_owned()),
            json: String::new(),
        },
        None => SchemaView {
            reference: None,
            json: serde_json::to_string_pretty(value).unwrap_or_default(),
        },
    }
}

fn media(content: &Value) -> Vec<MediaView> {
    content
        .as_object()
        .into_iter()
        .flatten()
        .map(|(content_type, media)| MediaView {
            content_type: content_type.clone(),
            schema: schema(&media["schema"]),
        })
        .collect()
}

fn operation(method: &str, path: &str, op: &Value) -> OperationView {
    let security = op["security"]
        .as_array()
        .map(|alternatives| {
            alternatives
                .iter()
                .filter_map(Value::as_object)
                .map(|all| all.keys().cloned().collect::<Vec<_>>().join(" + "))
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .unwrap_or_default();
    OperationView {
        method: method.to_ascii_uppercase(),
        path: path.to_owned(),
        id: text(&op["operationId"]),
        summary: text(&op["summary"]),
        description: text(&op["description"]),
        security,
        parameters: op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| ParameterView {
                name: text(&p["name"]),
                location: text(&p["in"]),
                required: p["required"].as_bool().unwrap_or(false),
                schema: schema(&p["schema"]),
                description: text(&p["description"]),
            })
            .collect(),
        body: media(&op["requestBody"]["content"]).into_iter().next(),
        responses: op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(status, r)| ResponseView {
                status: status.clone(),
                description: text(&r["description"]),
                media: media(&r["content"]),
            })
            .collect(),
    }
}

/// The page for the document `json` (the served JSON).
pub fn render(json: &str) -> String {
    let doc: Value = serde_json::from_str(json).expect("the document is JSON");
    let mut tags: Vec<TagView> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| TagView {
            name: text(&t["name"]),
            description: text(&t["description"]),
            operations: Vec::new(),
        })
        .collect();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            // The `/admin/…` aliases are the `/api/admin/…` operations again.
            if !op.is_object() || op.get("x-alias-of").is_some() {
                continue;
            }
            let tag = op["tags"][0].as_str().unwrap_or("other");
            let index = match tags.iter().position(|t| t.name == tag) {
                Some(index) => index,
                None => {
                    tags.push(TagView {
                        name: tag.to_owned(),
                        description: String::new(),
                        operations: Vec::new(),
                    });
                    tags.len() - 1
                }
            };
            tags[index].operations.push(operation(method, path, op));
        }
    }
    let components = &doc["components"];
    let page = Page {
        title: text(&doc["info"]["title"]),
        version: text(&doc["info"]["version"]),
        description: text(&doc["info"]["description"]),
        tags,
        schemes: components["securitySchemes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, s)| {
                let header = s["name"]
                    .as_str()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default();
                (name.clone(), format!("{header}{}", text(&s["description"])))
            })
            .collect(),
        schemas: components["schemas"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, s)| {
                (
                    name.clone(),
                    serde_json::to_string_pretty(s).unwrap_or_default(),
                )
            })
            .collect(),
    };
    page.render().expect("the API reference page renders")
}
