//! The metadata API of a workspace (§2.5, §3.4), called with the workspace's API key: list objects with their
//! fields, create objects and fields, update a field. Creating something that exists answers
//! [`TwentyError::AlreadyExists`] whichever of the two error shapes this Twenty version uses (§4.2), so
//! callers can treat it as "exists" and re-read.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{CallOptions, TwentyClient, TwentyError};
use super::documents::{self, Document};

/// An object of a workspace with its fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetadata {
    pub id: String,
    pub name_singular: String,
    pub name_plural: String,
    /// Twenty's own objects (v2.x; there is no `isCustom` any more).
    #[serde(default)]
    pub is_system: bool,
    #[serde(default = "active")]
    pub is_active: bool,
    #[serde(skip)]
    pub fields: Vec<FieldMetadata>,
}

impl ObjectMetadata {
    pub fn field(&self, name: &str) -> Option<&FieldMetadata> {
        self.fields.iter().find(|field| field.name == name)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMetadata {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub is_system: bool,
    #[serde(default = "active")]
    pub is_active: bool,
    #[serde(default)]
    pub is_unique: Option<bool>,
    #[serde(default)]
    pub options: Option<Value>,
    #[serde(default)]
    pub default_value: Option<Value>,
}

fn active() -> bool {
    true
}

/// What a create answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub id: String,
    #[serde(default, alias = "nameSingular")]
    pub name: String,
}

/// The metadata API of one workspace (the API key selects it).
#[derive(Clone)]
pub struct MetadataApi {
    client: TwentyClient,
    api_key: String,
}

impl std::fmt::Debug for MetadataApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataApi").finish_non_exhaustive()
    }
}

impl MetadataApi {
    pub fn new(client: TwentyClient, api_key: impl Into<String>) -> Self {
        Self {
            client,
            api_key: api_key.into(),
        }
    }

    /// Every object of the workspace, with its fields.
    pub async fn objects(&self) -> Result<Vec<ObjectMetadata>, TwentyError> {
        let data = self
            .call(&documents::LIST_OBJECTS, json!({}), CallOptions::IDEMPOTENT)
            .await?;
        let decode = |message: String| TwentyError::Decode {
            operation: "objects",
            message,
        };
        let edges = data["objects"]["edges"]
            .as_array()
            .ok_or_else(|| decode("no objects.edges".into()))?;
        edges
            .iter()
            .map(|edge| {
                let node = &edge["node"];
                let mut object: ObjectMetadata =
                    serde_json::from_value(node.clone()).map_err(|e| decode(e.to_string()))?;
                object.fields = node["fields"]["edges"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|edge| serde_json::from_value(edge["node"].clone()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| decode(e.to_string()))?;
                Ok(object)
            })
            .collect()
    }

    /// `createOneObject(input: {object})`; `object` is a `CreateObjectInput` (§2.5: camelCase names, labels,
    /// `isLabelSyncedWithName: false`).
    pub async fn create_object(&self, object: &Value) -> Result<Created, TwentyError> {
        let data = self
            .create(
                &documents::CREATE_OBJECT,
                json!({ "input": { "object": object } }),
            )
            .await?;
        decode_created("createOneObject", &data)
    }

    /// `createOneField(input: {field})`; `field` is a `CreateFieldInput` (§2.5: object-shaped SELECT options,
    /// quoted defaults, RELATION with `relationCreationPayload`).
    pub async fn create_field(&self, field: &Value) -> Result<Created, TwentyError> {
        let data = self
            .create(
                &documents::CREATE_FIELD,
                json!({ "input": { "field": field } }),
            )
            .await?;
        decode_created("createOneField", &data)
    }

    /// `updateOneField(input: {id, update})`, e.g. new SELECT options.
    pub async fn update_field(&self, id: &str, update: &Value) -> Result<Created, TwentyError> {
        let data = self
            .call(
                &documents::UPDATE_FIELD,
                json!({ "input": { "id": id, "update": update } }),
                CallOptions::IDEMPOTENT,
            )
            .await?;
        decode_created("updateOneField", &data)
    }

    /// A create: retried like an idempotent call, since a repeat of one that did happen answers "already
    /// exists", which the caller treats as success after re-reading.
    async fn create(&self, document: &Document, variables: Value) -> Result<Value, TwentyError> {
        self.call(document, variables, CallOptions::IDEMPOTENT)
            .await
            .map_err(TwentyError::into_already_exists)
    }

    async fn call(
        &self,
        document: &Document,
        variables: Value,
        options: CallOptions,
    ) -> Result<Value, TwentyError> {
        self.client
            .document(document, variables, Some(&self.api_key), options)
            .await
    }
}

fn decode_created(operation: &'static str, data: &Value) -> Result<Created, TwentyError> {
    serde_json::from_value(data[operation].clone()).map_err(|e| TwentyError::Decode {
        operation,
        message: e.to_string(),
    })
}
