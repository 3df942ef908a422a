//! The data-model manifest applied to workspaces: only what is missing is created, objects → scalar fields →
//! relations, "already exists" and 429s converge, and the fleet rollout isolates failures and resumes. The
//! metadata API is an in-memory stand-in that enforces current Twenty's rules (shared/reference/twenty.md
//! §2.5, §2.6): object-shaped options, quoted defaults, no custom `name`, relations only to existing objects,
//! no duplicates.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wosool::Role;
use wosool::crm::model::{
    Manifest, MetadataApi, MetadataConnector, MetadataError, RemoteField, RemoteObject,
    RolloutEvent, apply, apply_to_all,
};
use wosool::crm::workspace::WorkspaceCredentials;
use wosool::provisioning::integrations::BoxFuture;

use crate::crm_sync::{insert_workspace, keyring, ready_tenant};
use crate::fake_twenty::{option_errors, with_option_ids};
use crate::helpers::spawn_app_with;

const BUILT_IN: &[&str] = &[
    "id",
    "name",
    "createdAt",
    "updatedAt",
    "deletedAt",
    "createdBy",
    "position",
    "searchVector",
];

#[derive(Default)]
struct FakeMetadata {
    objects: Mutex<Vec<RemoteObject>>,
    next_id: AtomicUsize,
    /// Calls made, in order: "objects", "object:<name>", "field:<object>.<name>".
    calls: Mutex<Vec<String>>,
    /// The next read lists standard objects only (a listing that lags another run's creations).
    stale_next_read: AtomicBool,
    /// Answer the next N mutations with RateLimited.
    throttle_next: AtomicUsize,
    /// Fail every creation of this field name.
    fail_field: Mutex<Option<String>>,
    /// Every option list sent (creates and updates), as sent.
    options_sent: Mutex<Vec<Value>>,
}

impl FakeMetadata {
    fn new() -> Self {
        let fake = Self::default();
        for (singular, plural, fields) in [
            (
                "person",
                "people",
                &["id", "name", "emails", "phones", "city", "jobTitle"][..],
            ),
            ("company", "companies", &["id", "name", "domainName"][..]),
            (
                "opportunity",
                "opportunities",
                &["id", "name", "amount", "stage"][..],
            ),
            ("workflow", "workflows", &["id", "name", "statuses"][..]),
        ] {
            fake.add_object(singular, plural, fields);
        }
        fake
    }

    fn add_object(&self, singular: &str, plural: &str, fields: &[&str]) -> String {
        let id = format!("obj-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let fields = fields
            .iter()
            .map(|name| RemoteField {
                id: format!("fld-{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
                name: name.to_string(),
                field_type: "TEXT".into(),
                options: None,
            })
            .collect();
        self.objects.lock().unwrap().push(RemoteObject {
            id: id.clone(),
            name_singular: singular.into(),
            name_plural: plural.into(),
            fields,
        });
        id
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn throttled(&self) -> bool {
        self.throttle_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    fn create_object_now(&self, object: &Value) -> Result<String, MetadataError> {
        let singular = object["nameSingular"].as_str().unwrap_or_default();
        let plural = object["namePlural"].as_str().unwrap_or_default();
        if object["labelSingular"].as_str().is_none() || object["labelPlural"].as_str().is_none() {
            return Err(MetadataError::Other("labels are required".into()));
        }
        let objects = self.objects.lock().unwrap();
        if objects
            .iter()
            .any(|o| o.name_singular == singular || o.name_plural == plural)
        {
            return Err(MetadataError::AlreadyExists("Object already exists".into()));
        }
        drop(objects);
        Ok(self.add_object(singular, plural, BUILT_IN))
    }

    fn create_field_now(&self, field: &Value) -> Result<(), MetadataError> {
        if let Some(options) = field.get("options") {
            self.options_sent.lock().unwrap().push(options.clone());
        }
        let name = field["name"].as_str().unwrap_or_default().to_string();
        if self.fail_field.lock().unwrap().as_deref() == Some(name.as_str()) {
            return Err(MetadataError::Other(format!("cannot create {name}")));
        }
        let kind = field["type"].as_str().unwrap_or_default();
        if let Some(options) = field.get("options") {
            let errors = option_errors(&with_option_ids(options.clone()));
            if !errors.is_empty() {
                return Err(MetadataError::Other(errors.join("; ")));
            }
        }
        let quoted = |d: &str| d.len() >= 2 && d.starts_with('\'') && d.ends_with('\'');
        if let Some(default) = field.get("defaultValue")
            && matches!(kind, "TEXT" | "SELECT")
            && !default.as_str().is_some_and(quoted)
        {
            return Err(MetadataError::Other(
                "defaultValue must be a quoted string".into(),
            ));
        }
        let mut objects = self.objects.lock().unwrap();
        let target = field["objectMetadataId"].as_str().unwrap_or_default();
        let Some(index) = objects.iter().position(|o| o.id == target) else {
            return Err(MetadataError::Other("object not found".into()));
        };
        if objects[index].fields.iter().any(|f| f.name == name) {
            return Err(MetadataError::AlreadyExists("Field already exists".into()));
        }
        if kind == "RELATION" {
            let payload = &field["relationCreationPayload"];
            let to = payload["targetObjectMetadataId"]
                .as_str()
                .unwrap_or_default();
            let Some(to_index) = objects.iter().position(|o| o.id == to) else {
                return Err(MetadataError::Other("relation target not found".into()));
            };
            if !matches!(
                payload["type"].as_str(),
                Some("MANY_TO_ONE" | "ONE_TO_MANY")
            ) {
                return Err(MetadataError::Other("bad relation type".into()));
            }
            let label = payload["targetFieldLabel"].as_str().unwrap_or_default();
            let inverse: String = label
                .split(' ')
                .enumerate()
                .map(|(i, w)| {
                    if i == 0 {
                        w.to_lowercase()
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            if objects[to_index].fields.iter().any(|f| f.name == inverse) {
                return Err(MetadataError::AlreadyExists("Field already exists".into()));
            }
            let id = format!("fld-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
            objects[to_index].fields.push(RemoteField {
                id,
                name: inverse,
                field_type: "RELATION".into(),
                options: None,
            });
        }
        let id = format!("fld-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let options = field.get("options").cloned().map(with_option_ids);
        objects[index].fields.push(RemoteField {
            id,
            name,
            field_type: kind.into(),
            options,
        });
        Ok(())
    }

    /// `updateOneField` of options: Twenty's option rules (ids filled where missing, so an update that omits
    /// the existing ids would replace them).
    fn update_field_now(&self, id: &str, update: &Value) -> Result<(), MetadataError> {
        if let Some(options) = update.get("options") {
            self.options_sent.lock().unwrap().push(options.clone());
        }
        let mut objects = self.objects.lock().unwrap();
        let Some(field) = objects
            .iter_mut()
            .flat_map(|o| o.fields.iter_mut())
            .find(|f| f.id == id)
        else {
            return Err(MetadataError::Other("field not found".into()));
        };
        let Some(list) = update["options"].as_array() else {
            return Err(MetadataError::Other("only options are updated here".into()));
        };
        let options = with_option_ids(Value::Array(list.clone()));
        let errors = option_errors(&options);
        if !errors.is_empty() {
            return Err(MetadataError::Other(errors.join("; ")));
        }
        field.options = Some(options);
        Ok(())
    }
}

impl MetadataApi for FakeMetadata {
    fn objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<RemoteObject>, MetadataError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push("objects".into());
            let objects = self.objects.lock().unwrap().clone();
            if self.stale_next_read.swap(false, Ordering::Relaxed) {
                return Ok(objects.into_iter().take(4).collect());
            }
            Ok(objects)
        })
    }

    fn create_object<'a>(
        &'a self,
        object: &'a Value,
    ) -> BoxFuture<'a, Result<String, MetadataError>> {
        Box::pin(async move {
            if self.throttled() {
                return Err(MetadataError::RateLimited(Some(Duration::from_millis(5))));
            }
            self.calls.lock().unwrap().push(format!(
                "object:{}",
                object["nameSingular"].as_str().unwrap_or_default()
            ));
            self.create_object_now(object)
        })
    }

    fn create_field<'a>(&'a self, field: &'a Value) -> BoxFuture<'a, Result<(), MetadataError>> {
        Box::pin(async move {
            if self.throttled() {
                return Err(MetadataError::RateLimited(Some(Duration::from_millis(5))));
            }
            self.calls.lock().unwrap().push(format!(
                "field:{}:{}",
                field["type"].as_str().unwrap_or_default(),
                field["name"].as_str().unwrap_or_default()
            ));
            self.create_field_now(field)
        })
    }

    fn update_field<'a>(
        &'a self,
        id: &'a str,
        update: &'a Value,
    ) -> BoxFuture<'a, Result<(), MetadataError>> {
        Box::pin(async move {
            if self.throttled() {
                return Err(MetadataError::RateLimited(Some(Duration::from_millis(5))));
            }
            self.calls.lock().unwrap().push(format!("update:{id}"));
            self.update_field_now(id, update)
        })
    }
}

fn counts(manifest: &Manifest) -> (usize, usize, usize) {
    let fields = manifest
        .objects
        .iter()
        .map(|o| o.fields.len())
        .sum::<usize>()
        + manifest
            .extensions
            .iter()
            .map(|e| e.fields.len())
            .sum::<usize>();
    (manifest.objects.len(), fields, manifest.relations.len())
}

#[tokio::test]
async fn applying_creates_objects_then_fields_then_relations_and_twice_creates_nothing() {
    let manifest = Manifest::load().unwrap();
    let (objects, fields, relations) = counts(&manifest);
    let fake = FakeMetadata::new();
    let report = apply(&fake, &manifest).await.expect("applies");
    assert_eq!(
        (
            report.objects_created,
            report.fields_created,
            report.relations_created,
            report.already_existed
        ),
        (objects, fields, relations, 0)
    );
    // Order: every object before any field, every scalar field before any relation.
    let calls = fake.calls();
    let last_object = calls
        .iter()
        .rposition(|c| c.starts_with("object:"))
        .unwrap();
    let first_field = calls.iter().position(|c| c.starts_with("field:")).unwrap();
    let last_scalar = calls
        .iter()
        .rposition(|c| c.starts_with("field:") && !c.starts_with("field:RELATION"))
        .unwrap();
    let first_relation = calls
        .iter()
        .position(|c| c.starts_with("field:RELATION"))
        .unwrap();
    assert!(
        last_object < first_field && last_scalar < first_relation,
        "{calls:?}"
    );
    let person = fake
        .objects
        .lock()
        .unwrap()
        .iter()
        .find(|o| o.name_singular == "person")
        .cloned()
        .unwrap();
    let names: HashSet<&str> = person.fields.iter().map(|f| f.name.as_str()).collect();
    for expected in [
        "externalId",
        "totalSpent",
        "voiceCalls",
        "workflowExecutions",
        "communicationLogs",
    ] {
        assert!(names.contains(expected), "person.{expected}: {names:?}");
    }

    let before = fake.calls().len();
    let again = apply(&fake, &manifest).await.unwrap();
    assert_eq!(again.created(), 0);
    assert_eq!(
        fake.calls()[before..],
        ["objects".to_string()],
        "one read, no creation"
    );
}

/// The repository's manifest as version 2, with one option more on `sallaProduct.status` (a SELECT).
pub(crate) fn manifest_with_a_new_option() -> Manifest {
    let mut json: Value =
        serde_json::from_str(include_str!("../../config/crm-model.json")).expect("manifest JSON");
    json["version"] = json!(2);
    let product = json["objects"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["nameSingular"] == "sallaProduct")
        .expect("sallaProduct");
    let status = product["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == "status")
        .expect("sallaProduct.status");
    status["options"].as_array_mut().unwrap().push(
        json!({ "label": "Discontinued", "value": "DISCONTINUED", "color": "red", "position": 0 }),
    );
    Manifest::parse(&json.to_string()).expect("v2 is valid")
}

/// `(value, id, position)` of each option of `object.field`.
fn options_of(fake: &FakeMetadata, object: &str, field: &str) -> Vec<(String, String, i64)> {
    let objects = fake.objects.lock().unwrap();
    let field = objects
        .iter()
        .find(|o| o.name_singular == object)
        .and_then(|o| o.fields.iter().find(|f| f.name == field))
        .expect("field");
    field
        .options
        .as_ref()
        .and_then(Value::as_array)
        .expect("options")
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap().to_owned(),
                o["id"].as_str().unwrap().to_owned(),
                o["position"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_new_select_option_is_added_to_the_existing_field_keeping_its_options() {
    let fake = FakeMetadata::new();
    apply(&fake, &Manifest::load().unwrap()).await.unwrap();
    let before = options_of(&fake, "sallaProduct", "status");

    let v2 = manifest_with_a_new_option();
    let calls = fake.calls().len();
    let report = apply(&fake, &v2).await.expect("v2 applies");
    assert_eq!(report.options_added, 1);
    assert_eq!(report.created(), 1, "nothing else: {report:?}");
    let after = options_of(&fake, "sallaProduct", "status");
    assert_eq!(
        after[..before.len()],
        before[..],
        "existing options and ids kept"
    );
    let (value, _, position) = after.last().unwrap();
    assert_eq!(value, "DISCONTINUED");
    // Every option we sent carried its own UUID, as Twenty's frontend sends them.
    for options in fake.options_sent.lock().unwrap().iter() {
        for option in options.as_array().unwrap() {
            let id = option["id"]
                .as_str()
                .unwrap_or_else(|| panic!("no id: {option}"));
            uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("not a UUID: {option}"));
        }
    }
    assert_eq!(*position, before.iter().map(|o| o.2).max().unwrap() + 1);
    assert_eq!(
        fake.calls()[calls..]
            .iter()
            .filter(|c| c.starts_with("update:"))
            .count(),
        1
    );

    // An option the merchant added in Twenty stays, and a second run changes nothing.
    let (id, mut options) = {
        let objects = fake.objects.lock().unwrap();
        let field = objects
            .iter()
            .find(|o| o.name_singular == "sallaProduct")
            .and_then(|o| o.fields.iter().find(|f| f.name == "status"))
            .unwrap();
        (field.id.clone(), field.options.clone().unwrap())
    };
    options.as_array_mut().unwrap().push(
        json!({ "label": "Clearance", "value": "CLEARANCE", "color": "yellow", "position": 50 }),
    );
    fake.update_field_now(&id, &json!({ "options": options }))
        .unwrap();
    let calls = fake.calls().len();
    assert_eq!(apply(&fake, &v2).await.unwrap().created(), 0);
    assert_eq!(fake.calls()[calls..], ["objects".to_string()]);
    let values: Vec<String> = options_of(&fake, "sallaProduct", "status")
        .into_iter()
        .map(|o| o.0)
        .collect();
    assert!(values.contains(&"CLEARANCE".to_owned()), "{values:?}");
}

#[tokio::test]
async fn already_exists_and_rate_limits_converge() {
    let manifest = Manifest::load().unwrap();
    let (objects, fields, relations) = counts(&manifest);
    let fake = FakeMetadata::new();
    // Another run created two objects; this run's first listing does not show them yet.
    for name in ["sallaProduct", "voiceCall"] {
        let object = manifest.object(name).unwrap();
        fake.add_object(&object.name_singular, &object.name_plural, BUILT_IN);
    }
    fake.stale_next_read.store(true, Ordering::Relaxed);
    fake.throttle_next.store(3, Ordering::Relaxed);
    let report = apply(&fake, &manifest).await.expect("converges");
    assert_eq!(report.objects_created, objects - 2);
    assert_eq!(report.already_existed, 2);
    assert_eq!(
        (report.fields_created, report.relations_created),
        (fields, relations)
    );
    assert_eq!(apply(&fake, &manifest).await.unwrap().created(), 0);
}

#[tokio::test]
async fn the_stand_in_refuses_what_twenty_refuses() {
    let fake = FakeMetadata::new();
    let person = fake.objects.lock().unwrap()[0].id.clone();
    let legacy_select = json!({"objectMetadataId": person, "type": "SELECT", "name": "tier", "label": "Tier",
        "options": ["VIP", "NEW"], "defaultValue": "'VIP'"});
    assert!(matches!(
        fake.create_field_now(&legacy_select),
        Err(MetadataError::Other(_))
    ));
    let unquoted = json!({"objectMetadataId": person, "type": "TEXT", "name": "currency", "label": "Currency",
        "defaultValue": "SAR"});
    assert!(matches!(
        fake.create_field_now(&unquoted),
        Err(MetadataError::Other(_))
    ));
    let name = json!({"objectMetadataId": person, "type": "TEXT", "name": "name", "label": "Name"});
    assert!(matches!(
        fake.create_field_now(&name),
        Err(MetadataError::AlreadyExists(_))
    ));
    let relation = json!({"objectMetadataId": person, "type": "RELATION", "name": "call", "label": "Call",
        "relationCreationPayload": {"type": "MANY_TO_ONE", "targetObjectMetadataId": "missing",
        "targetFieldLabel": "People", "targetFieldIcon": "IconUser"}});
    assert!(matches!(
        fake.create_field_now(&relation),
        Err(MetadataError::Other(_))
    ));
}

/// One in-memory workspace per tenant (by workspace id); `broken` tenants fail on one field.
struct Connector {
    workspaces: Mutex<std::collections::HashMap<String, Arc<FakeMetadata>>>,
    broken: Mutex<HashSet<String>>,
}

struct Shared(Arc<FakeMetadata>);

impl MetadataApi for Shared {
    fn objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<RemoteObject>, MetadataError>> {
        self.0.objects()
    }
    fn create_object<'a>(
        &'a self,
        object: &'a Value,
    ) -> BoxFuture<'a, Result<String, MetadataError>> {
        self.0.create_object(object)
    }
    fn create_field<'a>(&'a self, field: &'a Value) -> BoxFuture<'a, Result<(), MetadataError>> {
        self.0.create_field(field)
    }
    fn update_field<'a>(
        &'a self,
        id: &'a str,
        update: &'a Value,
    ) -> BoxFuture<'a, Result<(), MetadataError>> {
        self.0.update_field(id, update)
    }
}

impl MetadataConnector for Connector {
    fn connect(
        &self,
        credentials: &WorkspaceCredentials,
    ) -> Result<Box<dyn MetadataApi>, MetadataError> {
        assert_eq!(
            credentials.api_key, "rollout-key",
            "the sealed key is opened"
        );
        let fake = self
            .workspaces
            .lock()
            .unwrap()
            .entry(credentials.workspace_id.clone())
            .or_insert_with(|| Arc::new(FakeMetadata::new()))
            .clone();
        let broken = self
            .broken
            .lock()
            .unwrap()
            .contains(&credentials.workspace_id);
        *fake.fail_field.lock().unwrap() = broken.then(|| "totalSpent".to_string());
        Ok(Box::new(Shared(fake)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_isolates_a_failing_workspace_records_versions_and_resumes() {
    let app = spawn_app_with(Role::All, |_| {}).await;
    let mut tenants = Vec::new();
    for name in ["Model A", "Model B", "Model C"] {
        let tenant = ready_tenant(&app, name).await;
        insert_workspace(&app, tenant.id, "rollout-key", 0).await;
        tenants.push(tenant.id);
    }
    let connector = Arc::new(Connector {
        workspaces: Mutex::default(),
        broken: Mutex::new(HashSet::from([format!("ws-{}", tenants[1])])),
    });
    let manifest = Arc::new(Manifest::load().unwrap());
    let events = Mutex::new(Vec::new());
    let report = apply_to_all(
        &app.db,
        &keyring(),
        connector.clone(),
        manifest.clone(),
        None,
        2,
        |e| events.lock().unwrap().push(e),
    )
    .await
    .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (2, 1));
    assert_eq!(report.failed[0].0, tenants[1]);
    let events = events.into_inner().unwrap();
    assert!(
        matches!(
            events[0],
            RolloutEvent::Started {
                total: 3,
                target: 2
            }
        ),
        "{events:?}"
    );
    assert_eq!(events.len(), 4);

    let rows: Vec<(wosool::tenancy::TenantId, i32, Option<String>)> = sqlx::query_as(
        "SELECT tenant_id, manifest_version, manifest_error FROM crm_workspaces ORDER BY created_at",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (tenant, version, error) in &rows {
        if *tenant == tenants[1] {
            assert_eq!(*version, 0);
            assert!(
                error.as_deref().is_some_and(|e| e.contains("totalSpent")),
                "{error:?}"
            );
        } else {
            assert_eq!((*version, error.as_deref()), (2, None));
        }
    }

    // Fixed: the rerun touches only the workspace still behind, and finishes what it had started.
    connector.broken.lock().unwrap().clear();
    let report = apply_to_all(
        &app.db,
        &keyring(),
        connector.clone(),
        manifest.clone(),
        None,
        2,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (1, 0));
    let behind: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM crm_workspaces WHERE manifest_version < 1 OR manifest_error IS NOT NULL",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(behind, 0);
    let report = apply_to_all(&app.db, &keyring(), connector, manifest, None, 2, |_| {})
        .await
        .unwrap();
    assert_eq!((report.succeeded, report.failed.len()), (0, 0));
}
