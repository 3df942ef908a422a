//! Object and field metadata: the standard objects of a new workspace, the `objects` answer, and
//! `createOneObject`, `createOneField` and `updateOneField` with the refusals of Twenty's metadata validators.

use serde_json::{Value, json};

use super::graphql::{GqlResult, gql_error, metadata_validation_failed};
use super::validation::{
    RESERVED_MESSAGE, RESERVED_METADATA_NAMES, is_camel_case, is_quoted, option_errors,
    with_option_ids,
};
use super::{DuplicateShape, FakeTwenty, Field, Object};

fn field(name: &str, field_type: &str, is_custom: bool) -> Field {
    Field {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        field_type: field_type.into(),
        is_custom,
        is_unique: false,
        is_active: true,
        options: Value::Null,
        default_value: Value::Null,
        relation_target: None,
    }
}

fn object(singular: &str, plural: &str, is_custom: bool, extra: &[(&str, &str)]) -> Object {
    let mut fields: Vec<Field> = [
        ("id", "UUID"),
        ("name", "TEXT"),
        ("createdAt", "DATE_TIME"),
        ("updatedAt", "DATE_TIME"),
        ("deletedAt", "DATE_TIME"),
        ("createdBy", "ACTOR"),
        ("position", "POSITION"),
    ]
    .iter()
    .map(|(name, ty)| field(name, ty, false))
    .collect();
    fields.extend(extra.iter().map(|(name, ty)| field(name, ty, false)));
    Object {
        id: uuid::Uuid::new_v4().to_string(),
        name_singular: singular.into(),
        name_plural: plural.into(),
        is_custom,
        fields,
    }
}

/// SELECT options as Twenty stores them (value, label, position, color, id).
fn select_options(values: &[(&str, &str)]) -> Value {
    Value::Array(
        values
            .iter()
            .enumerate()
            .map(|(position, (value, color))| {
                json!({ "id": uuid::Uuid::new_v4().to_string(), "value": value, "label": value,
                        "position": position, "color": color })
            })
            .collect(),
    )
}

/// An activity-like standard object: no `name` (its label identifier is `title`, or none for targets).
fn without_name(mut object: Object) -> Object {
    object.fields.retain(|f| f.name != "name");
    object
}

fn with_options(mut object: Object, field: &str, options: &[(&str, &str)]) -> Object {
    if let Some(f) = object.fields.iter_mut().find(|f| f.name == field) {
        f.options = select_options(options);
    }
    object
}

/// The task `status` options and the opportunity `stage` options of Twenty's standard objects.
pub(crate) const TASK_STATUSES: &[(&str, &str)] = &[
    ("TODO", "sky"),
    ("IN_PROGRESS", "purple"),
    ("DONE", "green"),
];
pub(crate) const OPPORTUNITY_STAGES: &[(&str, &str)] = &[
    ("NEW", "red"),
    ("SCREENING", "purple"),
    ("MEETING", "sky"),
    ("PROPOSAL", "turquoise"),
    ("CUSTOMER", "yellow"),
];

pub(super) fn standard_objects() -> Vec<Object> {
    let mut person = object(
        "person",
        "people",
        false,
        &[("emails", "EMAILS"), ("phones", "PHONES")],
    );
    if let Some(name) = person.fields.iter_mut().find(|f| f.name == "name") {
        name.field_type = "FULL_NAME".into();
    }
    // Notes, tasks, opportunities and their targets as Twenty's standard objects define them
    // (note/task/opportunity/noteTarget/taskTarget `.workspace-entity.ts`); their records are checked
    // field by field (`rest::check_record`).
    let note = without_name(object(
        "note",
        "notes",
        false,
        &[
            ("title", "TEXT"),
            ("bodyV2", "RICH_TEXT"),
            ("updatedBy", "ACTOR"),
        ],
    ));
    let task = with_options(
        without_name(object(
            "task",
            "tasks",
            false,
            &[
                ("title", "TEXT"),
                ("bodyV2", "RICH_TEXT"),
                ("dueAt", "DATE_TIME"),
                ("status", "SELECT"),
                ("assigneeId", "UUID"),
                ("updatedBy", "ACTOR"),
            ],
        )),
        "status",
        TASK_STATUSES,
    );
    let opportunity = with_options(
        object(
            "opportunity",
            "opportunities",
            false,
            &[
                ("amount", "CURRENCY"),
                ("closeDate", "DATE_TIME"),
                ("stage", "SELECT"),
                ("probability", "TEXT"),
                ("pointOfContactId", "UUID"),
                ("companyId", "UUID"),
                ("updatedBy", "ACTOR"),
            ],
        ),
        "stage",
        OPPORTUNITY_STAGES,
    );
    let target = |singular: &str, plural: &str, record: &str| {
        without_name(object(
            singular,
            plural,
            false,
            &[
                (record, "UUID"),
                ("personId", "UUID"),
                ("companyId", "UUID"),
                ("opportunityId", "UUID"),
            ],
        ))
    };
    vec![
        object("company", "companies", false, &[("domainName", "LINKS")]),
        person,
        opportunity,
        note,
        task,
        target("noteTarget", "noteTargets", "noteId"),
        target("taskTarget", "taskTargets", "taskId"),
        // Workflows are standard objects since Twenty v1.x.
        object("workflow", "workflows", false, &[("statuses", "ARRAY")]),
        object("workflowRun", "workflowRuns", false, &[]),
        object("workflowVersion", "workflowVersions", false, &[]),
        object("workspaceMember", "workspaceMembers", false, &[]),
    ]
}

/// An object as the `objects` query answers it (Twenty's own objects are `isSystem` only for its internal
/// ones; the standard ones a merchant sees are not).
pub(super) fn object_json(object: &Object) -> Value {
    let fields: Vec<Value> = object
        .fields
        .iter()
        .map(|f| {
            json!({ "node": {
                "id": f.id, "name": f.name, "type": f.field_type, "isActive": f.is_active,
                "isSystem": !f.is_custom && matches!(f.name.as_str(), "id" | "createdBy" | "position"),
                "isUnique": f.is_unique, "options": f.options, "defaultValue": f.default_value,
            } })
        })
        .collect();
    json!({
        "id": object.id, "nameSingular": object.name_singular, "namePlural": object.name_plural,
        "isActive": true, "isSystem": !object.is_custom && object.name_singular == "workspaceMember",
        "fields": { "edges": fields },
    })
}

impl FakeTwenty {
    fn duplicate(&self, kind: &str, name: &str) -> Value {
        let (key, code, message) = if kind == "object" {
            (
                "objectMetadata",
                "OBJECT_ALREADY_EXISTS",
                "Object already exists",
            )
        } else {
            (
                "fieldMetadata",
                "FIELD_ALREADY_EXISTS",
                "Field already exists",
            )
        };
        match self.duplicates {
            DuplicateShape::Conflict => gql_error(message, "CONFLICT"),
            DuplicateShape::ValidationFailed => {
                metadata_validation_failed(key, &[(code, message.to_owned(), json!(name))])
            }
        }
    }

    fn invalid(&self, kind: &str, message: &str) -> Value {
        match self.duplicates {
            DuplicateShape::Conflict => gql_error(message, "BAD_USER_INPUT"),
            DuplicateShape::ValidationFailed => {
                let code = if kind == "objectMetadata" {
                    "INVALID_OBJECT_INPUT"
                } else {
                    "INVALID_FIELD_INPUT"
                };
                metadata_validation_failed(kind, &[(code, message.to_owned(), Value::Null)])
            }
        }
    }

    pub(super) fn create_object(&mut self, workspace: &str, input: &Value) -> GqlResult {
        let singular = input["nameSingular"].as_str().unwrap_or_default();
        let plural = input["namePlural"].as_str().unwrap_or_default();
        if !is_camel_case(singular) || !is_camel_case(plural) || singular == plural {
            return Err(self.invalid(
                "objectMetadata",
                &format!("Invalid object names {singular:?}/{plural:?}"),
            ));
        }
        let reserved: Vec<(&str, String, Value)> = [singular, plural]
            .into_iter()
            .filter(|name| RESERVED_METADATA_NAMES.contains(name))
            .map(|name| {
                (
                    "INVALID_OBJECT_INPUT",
                    RESERVED_MESSAGE.to_owned(),
                    json!(name),
                )
            })
            .collect();
        if !reserved.is_empty() {
            return Err(metadata_validation_failed("objectMetadata", &reserved));
        }
        if input["labelSingular"].as_str().is_none() || input["labelPlural"].as_str().is_none() {
            return Err(self.invalid(
                "objectMetadata",
                "labelSingular and labelPlural are required",
            ));
        }
        let exists = self.workspace(workspace).is_some_and(|ws| {
            ws.objects.iter().any(|o| {
                [o.name_singular.as_str(), o.name_plural.as_str()]
                    .iter()
                    .any(|n| *n == singular || *n == plural)
            })
        });
        if exists {
            return Err(self.duplicate("object", singular));
        }
        let created = object(singular, plural, true, &[]);
        let answer = json!({ "id": created.id, "nameSingular": singular, "namePlural": plural });
        let ws = self.workspace_mut(workspace).expect("workspace of a token");
        ws.objects.push(created);
        Ok(answer)
    }

    pub(super) fn create_field(&mut self, workspace: &str, input: &Value) -> GqlResult {
        let object_id = input["objectMetadataId"].as_str().unwrap_or_default();
        let name = input["name"].as_str().unwrap_or_default().to_owned();
        let field_type = input["type"].as_str().unwrap_or_default().to_owned();
        let Some(target) = self
            .workspace(workspace)
            .and_then(|ws| ws.objects.iter().find(|o| o.id == object_id))
            .cloned()
        else {
            return Err(gql_error("Object metadata not found", "NOT_FOUND"));
        };
        if input["label"].as_str().is_none() {
            return Err(self.invalid("fieldMetadata", "label is required"));
        }
        if !is_camel_case(&name) {
            return Err(self.invalid("fieldMetadata", &format!("Invalid field name {name:?}")));
        }
        if RESERVED_METADATA_NAMES.contains(&name.as_str()) {
            return Err(metadata_validation_failed(
                "fieldMetadata",
                &[(
                    "INVALID_FIELD_INPUT",
                    RESERVED_MESSAGE.to_owned(),
                    json!(name),
                )],
            ));
        }
        if target.fields.iter().any(|f| f.name == name) {
            return Err(self.duplicate("field", &name));
        }
        let options = with_option_ids(input.get("options").cloned().unwrap_or(Value::Null));
        let default = input.get("defaultValue").cloned().unwrap_or(Value::Null);
        if matches!(field_type.as_str(), "SELECT" | "MULTI_SELECT") {
            let errors = option_errors(&options);
            if !errors.is_empty() {
                let errors: Vec<(&str, String, Value)> = errors
                    .into_iter()
                    .map(|message| ("INVALID_FIELD_INPUT", message, Value::Null))
                    .collect();
                return Err(metadata_validation_failed("fieldMetadata", &errors));
            }
            let quoted_values: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["value"].as_str().map(|v| format!("'{v}'")))
                .collect();
            let defaults: Vec<&Value> = match (&default, field_type.as_str()) {
                (Value::Null, _) => vec![],
                (Value::Array(items), "MULTI_SELECT") => items.iter().collect(),
                (value, _) => vec![value],
            };
            for value in defaults {
                if !is_quoted(value) {
                    return Err(
                        self.invalid("fieldMetadata", "Default value should be as quoted string")
                    );
                }
                if !quoted_values
                    .iter()
                    .any(|q| Some(q.as_str()) == value.as_str())
                {
                    return Err(self.invalid(
                        "fieldMetadata",
                        &format!("Default value {value} must be one of the option values"),
                    ));
                }
            }
        }
        if field_type == "TEXT" && !default.is_null() && !is_quoted(&default) {
            return Err(self.invalid("fieldMetadata", "Default value should be as quoted string"));
        }
        if matches!(field_type.as_str(), "NUMBER" | "NUMERIC")
            && !default.is_null()
            && !default.is_number()
        {
            return Err(self.invalid("fieldMetadata", "Default value must be a number"));
        }
        let mut created = field(&name, &field_type, true);
        created.is_unique = input["isUnique"].as_bool().unwrap_or(false);
        created.options = options;
        created.default_value = default;
        let mut inverse = None;
        if field_type == "RELATION" {
            let payload = &input["relationCreationPayload"];
            let target_id = payload["targetObjectMetadataId"]
                .as_str()
                .unwrap_or_default();
            if !self
                .workspace(workspace)
                .is_some_and(|ws| ws.objects.iter().any(|o| o.id == target_id))
            {
                return Err(self.invalid("fieldMetadata", "Target object metadata not found"));
            }
            let inverse_name = payload["targetFieldName"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    let label = payload["targetFieldLabel"].as_str().unwrap_or("inverse");
                    let mut chars = label.chars().filter(|c| c.is_alphanumeric());
                    chars
                        .next()
                        .map(|c| c.to_lowercase().collect::<String>() + &chars.collect::<String>())
                        .unwrap_or_default()
                });
            created.relation_target = Some(target_id.to_owned());
            let mut back = field(&inverse_name, "RELATION", true);
            back.relation_target = Some(object_id.to_owned());
            inverse = Some((target_id.to_owned(), back));
        }
        let answer = json!({ "id": created.id, "name": name, "type": field_type });
        let ws = self.workspace_mut(workspace).expect("workspace of a token");
        if let Some(o) = ws.objects.iter_mut().find(|o| o.id == object_id) {
            o.fields.push(created);
        }
        if let Some((target, back)) = inverse
            && let Some(o) = ws.objects.iter_mut().find(|o| o.id == target)
        {
            o.fields.push(back);
        }
        Ok(answer)
    }

    pub(super) fn update_field(&mut self, workspace: &str, input: &Value) -> GqlResult {
        let id = input["id"].as_str().unwrap_or_default();
        let update = &input["update"];
        let ws = self.workspace_mut(workspace).expect("workspace of a token");
        let Some(f) = ws
            .objects
            .iter_mut()
            .flat_map(|o| o.fields.iter_mut())
            .find(|f| f.id == id)
        else {
            return Err(gql_error("Field metadata not found", "NOT_FOUND"));
        };
        if let Some(options) = update.get("options") {
            let options = with_option_ids(options.clone());
            let errors = option_errors(&options);
            if !errors.is_empty() {
                let errors: Vec<(&str, String, Value)> = errors
                    .into_iter()
                    .map(|message| ("INVALID_FIELD_INPUT", message, Value::Null))
                    .collect();
                return Err(metadata_validation_failed("fieldMetadata", &errors));
            }
            f.options = options;
        }
        if let Some(default) = update.get("defaultValue") {
            f.default_value = default.clone();
        }
        if let Some(active) = update["isActive"].as_bool() {
            f.is_active = active;
        }
        Ok(json!({ "id": f.id, "name": f.name, "type": f.field_type }))
    }
}
