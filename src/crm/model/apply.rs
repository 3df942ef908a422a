//! Applying the manifest to a workspace: read its metadata, create only what is missing, one call at a time,
//! objects → scalar fields → SELECT options → relations (relations need both ends' ids). "Already exists"
//! counts as done and is followed by a re-read, so a crashed or concurrent run converges
//! (shared/reference/twenty.md §4.2).
//!
//! Options of an existing SELECT or MULTI_SELECT field are only ever added (`updateOneField` with the field's
//! current options, ids kept, plus the missing ones): never removed or relabelled, because records may hold
//! them and the merchant may have renamed or recoloured them in Twenty.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use super::manifest::{FieldDef, Manifest, ObjectDef, RelationDef};
use crate::crm::workspace::{self, CredentialsError, WorkspaceCredentials};
use crate::provisioning::integrations::BoxFuture;
use crate::secrets::Keyring;
use crate::tenancy::TenantId;
use crate::tenancy::registry::tenant_sql;
use crate::tenancy::rollout::{self, RolloutReport, Target};

/// An object of the workspace, as the metadata API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub id: String,
    pub name_singular: String,
    pub name_plural: String,
    pub fields: Vec<RemoteField>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteField {
    pub id: String,
    pub name: String,
    pub field_type: String,
    /// SELECT / MULTI_SELECT: the options as Twenty lists them (each with its `id`).
    pub options: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Either duplicate shape of §2.5 (`CONFLICT`, `OBJECT_ALREADY_EXISTS`/`FIELD_ALREADY_EXISTS`) or a message
    /// matching /already exists/i.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// 429 / `LIMIT_REACHED`, with the Retry-After when one was given.
    #[error("rate limited")]
    RateLimited(Option<Duration>),
    #[error("{0}")]
    Other(String),
}

/// The metadata operations `apply` needs; the Twenty client implements them over `POST /metadata`.
pub trait MetadataApi: Send + Sync {
    /// Every object of the workspace with its fields.
    fn objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<RemoteObject>, MetadataError>>;
    /// `createOneObject(input: { object })`; returns the new object's id.
    fn create_object<'a>(
        &'a self,
        object: &'a Value,
    ) -> BoxFuture<'a, Result<String, MetadataError>>;
    /// `createOneField(input: { field })`; `field` includes `objectMetadataId`.
    fn create_field<'a>(&'a self, field: &'a Value) -> BoxFuture<'a, Result<(), MetadataError>>;
    /// `updateOneField(input: { id, update })`.
    fn update_field<'a>(
        &'a self,
        id: &'a str,
        update: &'a Value,
    ) -> BoxFuture<'a, Result<(), MetadataError>>;
}

/// What one `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    pub objects_created: usize,
    pub fields_created: usize,
    pub relations_created: usize,
    /// Options added to SELECT / MULTI_SELECT fields that already existed.
    pub options_added: usize,
    /// Creations answered "already exists" (another run got there first).
    pub already_existed: usize,
}

impl ApplyReport {
    /// Everything this run added to the workspace.
    pub fn created(&self) -> usize {
        self.objects_created + self.fields_created + self.relations_created + self.options_added
    }
}

impl std::fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} created", self.created())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("reading the workspace metadata: {0}")]
    Read(MetadataError),
    #[error("creating {what}: {error}")]
    Create { what: String, error: MetadataError },
    #[error("adding options to {what}: {error}")]
    Update { what: String, error: MetadataError },
    #[error("{0} is missing from the workspace after creating it")]
    Missing(String),
}

/// Why the model was not applied to one workspace: what `crm_workspaces.manifest_error` and the rollout
/// report say.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceApplyError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Applied, but the version could not be recorded (the next rollout applies it again, a no-op).
    #[error("recording the applied version: {0}")]
    Record(sqlx::Error),
    #[error("the workspace has no API key")]
    NoApiKey,
    #[error("workspace credentials: {0}")]
    Credentials(CredentialsError),
    /// The metadata client could not be built (`MetadataConnector::connect`).
    #[error(transparent)]
    Connect(MetadataError),
}

/// Rate-limited calls are retried this many times, waiting Retry-After (at most [`MAX_WAIT`]) in between.
const RATE_LIMIT_RETRIES: u32 = 5;
const DEFAULT_WAIT: Duration = Duration::from_secs(2);
const MAX_WAIT: Duration = Duration::from_secs(60);

async fn patiently<'a, T>(
    call: impl Fn() -> BoxFuture<'a, Result<T, MetadataError>>,
) -> Result<T, MetadataError> {
    let mut retries = 0;
    loop {
        match call().await {
            Err(MetadataError::RateLimited(wait)) if retries < RATE_LIMIT_RETRIES => {
                retries += 1;
                tokio::time::sleep(wait.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT)).await;
            }
            other => return other,
        }
    }
}

/// The workspace's objects by singular name.
async fn read(api: &dyn MetadataApi) -> Result<HashMap<String, RemoteObject>, ApplyError> {
    let objects = patiently(|| api.objects())
        .await
        .map_err(ApplyError::Read)?;
    Ok(objects
        .into_iter()
        .map(|o| (o.name_singular.clone(), o))
        .collect())
}

fn has_field(remote: &HashMap<String, RemoteObject>, object: &str, field: &str) -> bool {
    remote_field(remote, object, field).is_some()
}

fn remote_field<'r>(
    remote: &'r HashMap<String, RemoteObject>,
    object: &str,
    field: &str,
) -> Option<&'r RemoteField> {
    remote.get(object)?.fields.iter().find(|f| f.name == field)
}

fn object_id<'r>(
    remote: &'r HashMap<String, RemoteObject>,
    object: &str,
) -> Result<&'r str, ApplyError> {
    remote
        .get(object)
        .map(|o| o.id.as_str())
        .ok_or_else(|| ApplyError::Missing(format!("object {object}")))
}

/// Creates what the workspace lacks of `manifest`. Applying twice creates nothing the second time.
pub async fn apply(api: &dyn MetadataApi, manifest: &Manifest) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    let mut remote = read(api).await?;

    let mut reread = false;
    for object in &manifest.objects {
        if remote.contains_key(&object.name_singular) {
            continue;
        }
        let input = object_input(object);
        match patiently(|| api.create_object(&input)).await {
            Ok(_) => report.objects_created += 1,
            Err(MetadataError::AlreadyExists(_)) => report.already_existed += 1,
            Err(error) => {
                return Err(ApplyError::Create {
                    what: format!("object {}", object.name_singular),
                    error,
                });
            }
        }
        reread = true;
    }
    if reread {
        remote = read(api).await?;
    }

    reread = false;
    for (object, fields) in scalar_fields(manifest) {
        for field in fields {
            if has_field(&remote, object, &field.name) {
                continue;
            }
            let input = field_input(object_id(&remote, object)?, field);
            report.record(
                patiently(|| api.create_field(&input)).await,
                || format!("field {object}.{}", field.name),
                |r| r.fields_created += 1,
            )?;
            reread = true;
        }
    }
    if reread {
        remote = read(api).await?;
    }

    for (object, fields) in scalar_fields(manifest) {
        for field in fields {
            let Some(existing) = remote_field(&remote, object, &field.name) else {
                continue;
            };
            let Some(options) = added_options(existing, field) else {
                continue;
            };
            let added = options.len();
            let mut merged = existing
                .options
                .as_ref()
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            merged.extend(options);
            let update = json!({ "options": merged });
            patiently(|| api.update_field(&existing.id, &update))
                .await
                .map_err(|error| ApplyError::Update {
                    what: format!("field {object}.{}", field.name),
                    error,
                })?;
            report.options_added += added;
        }
    }

    for relation in &manifest.relations {
        if has_field(&remote, &relation.from_object, &relation.from_field) {
            continue;
        }
        let input = relation_input(
            object_id(&remote, &relation.from_object)?,
            object_id(&remote, &relation.to_object)?,
            relation,
        );
        let outcome = patiently(|| api.create_field(&input)).await;
        let existed = matches!(outcome, Err(MetadataError::AlreadyExists(_)));
        report.record(
            outcome,
            || format!("relation {}.{}", relation.from_object, relation.from_field),
            |r| r.relations_created += 1,
        )?;
        if existed {
            // The inverse field may be what exists: re-read before the next relation to the same target.
            remote = read(api).await?;
        }
    }
    Ok(report)
}

/// Every object's scalar fields, the custom objects' and the extended standard objects', by object name.
fn scalar_fields(manifest: &Manifest) -> impl Iterator<Item = (&str, &Vec<FieldDef>)> {
    manifest
        .objects
        .iter()
        .map(|o| (o.name_singular.as_str(), &o.fields))
        .chain(
            manifest
                .extensions
                .iter()
                .map(|e| (e.object_name.as_str(), &e.fields)),
        )
}

/// The manifest's options that the workspace's field lacks (compared by `value`), positioned after the
/// field's own; `None` when there are none, or when the field is not a SELECT / MULTI_SELECT in both.
fn added_options(existing: &RemoteField, field: &FieldDef) -> Option<Vec<Value>> {
    let is_enum = |kind: &str| matches!(kind, "SELECT" | "MULTI_SELECT");
    if !is_enum(&field.field_type) || existing.field_type != field.field_type {
        return None;
    }
    let wanted = field.options.as_ref()?;
    let current = existing
        .options
        .as_ref()
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let has = |value: &Value| current.iter().any(|o| o["value"] == *value);
    let mut next_position = current
        .iter()
        .filter_map(|o| o["position"].as_i64())
        .max()
        .map_or(0, |p| p + 1);
    let missing: Vec<Value> = wanted
        .iter()
        .filter(|o| !has(&o["value"]))
        .map(|option| {
            let mut option = with_id(option);
            option["position"] = json!(next_position);
            next_position += 1;
            option
        })
        .collect();
    (!missing.is_empty()).then_some(missing)
}

impl ApplyReport {
    fn record(
        &mut self,
        outcome: Result<(), MetadataError>,
        what: impl FnOnce() -> String,
        created: impl FnOnce(&mut Self),
    ) -> Result<(), ApplyError> {
        match outcome {
            Ok(()) => created(self),
            Err(MetadataError::AlreadyExists(_)) => self.already_existed += 1,
            Err(error) => {
                return Err(ApplyError::Create {
                    what: what(),
                    error,
                });
            }
        }
        Ok(())
    }
}

/// The `createOneObject` `object` input. Names are not synced with labels (§2.5).
pub fn object_input(object: &ObjectDef) -> Value {
    let mut input = Map::new();
    input.insert("nameSingular".into(), json!(object.name_singular));
    input.insert("namePlural".into(), json!(object.name_plural));
    input.insert("labelSingular".into(), json!(object.label_singular));
    input.insert("labelPlural".into(), json!(object.label_plural));
    if let Some(description) = &object.description {
        input.insert("description".into(), json!(description));
    }
    if let Some(icon) = &object.icon {
        input.insert("icon".into(), json!(icon));
    }
    input.insert("isLabelSyncedWithName".into(), json!(false));
    Value::Object(input)
}

/// A manifest option as sent to Twenty: with a fresh v4 `id`, as Twenty's own frontend sends every new option
/// (its newest validator refuses an option without one; ids of existing options are kept as Twenty lists them).
fn with_id(option: &Value) -> Value {
    let mut option = option.clone();
    option["id"] = json!(uuid::Uuid::new_v4().to_string());
    option
}

/// The `createOneField` `field` input of a scalar field.
pub fn field_input(object_metadata_id: &str, field: &FieldDef) -> Value {
    let mut input = Map::new();
    input.insert("objectMetadataId".into(), json!(object_metadata_id));
    input.insert("type".into(), json!(field.field_type));
    input.insert("name".into(), json!(field.name));
    input.insert("label".into(), json!(field.label));
    input.insert("isLabelSyncedWithName".into(), json!(false));
    for (key, value) in [
        ("description", field.description.as_ref().map(|d| json!(d))),
        ("icon", field.icon.as_ref().map(|i| json!(i))),
        ("isUnique", field.is_unique.map(|u| json!(u))),
        (
            "options",
            field
                .options
                .as_ref()
                .map(|o| Value::Array(o.iter().map(with_id).collect())),
        ),
        ("defaultValue", field.default_value.clone()),
    ] {
        if let Some(value) = value {
            input.insert(key.into(), value);
        }
    }
    Value::Object(input)
}

/// The `createOneField` `field` input of a RELATION field, created from the `from` side (Twenty adds the
/// inverse field on the target).
pub fn relation_input(from_id: &str, to_id: &str, relation: &RelationDef) -> Value {
    let mut input = Map::new();
    input.insert("objectMetadataId".into(), json!(from_id));
    input.insert("type".into(), json!("RELATION"));
    input.insert("name".into(), json!(relation.from_field));
    input.insert("label".into(), json!(relation.from_label));
    if let Some(icon) = &relation.from_icon {
        input.insert("icon".into(), json!(icon));
    }
    input.insert("isLabelSyncedWithName".into(), json!(false));
    input.insert(
        "relationCreationPayload".into(),
        json!({
            "type": relation.relation_type,
            "targetObjectMetadataId": to_id,
            "targetFieldLabel": relation.to_field_label,
            "targetFieldIcon": relation.to_field_icon,
        }),
    );
    Value::Object(input)
}

/// Applies `manifest` to one tenant's workspace and records the outcome in `crm_workspaces`: the version on
/// success, `manifest_error` on failure (the version stays where it was, so a rerun picks the tenant again).
pub async fn apply_to_workspace(
    db: &PgPool,
    tenant: TenantId,
    api: &dyn MetadataApi,
    manifest: &Manifest,
) -> Result<ApplyReport, WorkspaceApplyError> {
    match apply(api, manifest).await {
        Ok(report) => {
            sqlx::query(
                "UPDATE crm_workspaces SET manifest_version = $2, manifest_error = NULL, updated_at = now() \
                 WHERE tenant_id = $1",
            )
            .bind(tenant)
            .bind(manifest.version())
            .execute(db)
            .await
            .map_err(WorkspaceApplyError::Record)?;
            Ok(report)
        }
        Err(error) => {
            let error = WorkspaceApplyError::from(error);
            record_error(db, tenant, &error.to_string()).await;
            Err(error)
        }
    }
}

async fn record_error(db: &PgPool, tenant: TenantId, error: &str) {
    let recorded = sqlx::query(
        "UPDATE crm_workspaces SET manifest_error = $2, updated_at = now() WHERE tenant_id = $1",
    )
    .bind(tenant)
    .bind(error)
    .execute(db)
    .await;
    if let Err(db_error) = recorded {
        tracing::warn!(%tenant, error = %db_error, "could not record the CRM model error");
    }
}

/// Builds the metadata client of a workspace (the Twenty client, given the tenant's credentials).
pub trait MetadataConnector: Send + Sync {
    fn connect(
        &self,
        credentials: &WorkspaceCredentials,
    ) -> Result<Box<dyn MetadataApi>, MetadataError>;
}

/// Progress of a data-model rollout; each workspace reports what applying the model did.
pub type RolloutEvent = rollout::RolloutEvent<ApplyReport>;

/// Applies `manifest` to every ready workspace behind its version (or only `only`), `concurrency` workspaces
/// at a time (each one serially). A failing tenant is recorded and does not stop the others; rerunning picks
/// up only the workspaces still behind.
pub async fn apply_to_all(
    db: &PgPool,
    keyring: &Keyring,
    connector: Arc<dyn MetadataConnector>,
    manifest: Arc<Manifest>,
    only: Option<TenantId>,
    concurrency: usize,
    progress: impl Fn(RolloutEvent),
) -> Result<RolloutReport, sqlx::Error> {
    let behind: Vec<Target> = sqlx::query_as(concat!(
        "SELECT w.tenant_id AS id, ",
        tenant_sql!(slug "w.tenant_id"),
        " AS slug FROM crm_workspaces w \
         WHERE w.step = 'ready' AND w.manifest_version < $1 AND ($2::uuid IS NULL OR w.tenant_id = $2) AND ",
        tenant_sql!(serving "w.tenant_id"),
        " ORDER BY ",
        tenant_sql!(created_at "w.tenant_id"),
        ", w.tenant_id"
    ))
    .bind(manifest.version())
    .bind(only)
    .fetch_all(db)
    .await?;
    let report =
        rollout::run(
            behind,
            manifest.version().into(),
            concurrency,
            |target| {
                let (db, keyring) = (db.clone(), keyring.clone());
                let (connector, manifest) = (connector.clone(), manifest.clone());
                async move {
                    apply_one(&db, &keyring, connector.as_ref(), &manifest, target.tenant).await
                }
            },
            progress,
        )
        .await;
    Ok(report)
}

async fn apply_one(
    db: &PgPool,
    keyring: &Keyring,
    connector: &dyn MetadataConnector,
    manifest: &Manifest,
    tenant: TenantId,
) -> Result<ApplyReport, WorkspaceApplyError> {
    let connected = match workspace::credentials(db, keyring, tenant).await {
        Ok(Some(credentials)) => connector
            .connect(&credentials)
            .map_err(WorkspaceApplyError::Connect),
        Ok(None) => Err(WorkspaceApplyError::NoApiKey),
        Err(error) => Err(WorkspaceApplyError::Credentials(error)),
    };
    match connected {
        Ok(api) => apply_to_workspace(db, tenant, api.as_ref(), manifest).await,
        Err(error) => {
            record_error(db, tenant, &error.to_string()).await;
            Err(error)
        }
    }
}
