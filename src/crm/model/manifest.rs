//! The Wosool data model as a versioned manifest (`config/crm-model.json`, embedded at build time), and the
//! checks that keep it acceptable to current Twenty (shared/reference/twenty.md §2.5, §2.6) before any
//! workspace sees it.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The manifest shipped with this build.
pub const MANIFEST_JSON: &str = include_str!("../../../config/crm-model.json");

/// Twenty's standard objects that the manifest may extend or point relations at.
pub const STANDARD_OBJECTS: &[&str] = &[
    "person",
    "company",
    "opportunity",
    "note",
    "task",
    "workflow",
    "workflowRun",
    "workflowVersion",
    "workspaceMember",
];

/// Fields every custom object gets from Twenty (§2.5): recreating any of them is a conflict.
const BUILT_IN_FIELDS: &[&str] = &[
    "id",
    "name",
    "createdAt",
    "updatedAt",
    "deletedAt",
    "createdBy",
    "updatedBy",
    "position",
    "searchVector",
];

/// `FieldMetadataType` values of current Twenty that a manifest may create (RELATION goes in `relations`).
const FIELD_TYPES: &[&str] = &[
    "ADDRESS",
    "ARRAY",
    "BOOLEAN",
    "CURRENCY",
    "DATE",
    "DATE_TIME",
    "EMAILS",
    "FULL_NAME",
    "LINKS",
    "MULTI_SELECT",
    "NUMBER",
    "NUMERIC",
    "PHONES",
    "RATING",
    "RAW_JSON",
    "RICH_TEXT",
    "SELECT",
    "TEXT",
    "UUID",
];

const OPTION_COLORS: &[&str] = &[
    "green",
    "turquoise",
    "sky",
    "blue",
    "purple",
    "pink",
    "red",
    "orange",
    "yellow",
    "gray",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Bumped on every change; recorded per workspace in `crm_workspaces.manifest_version`. Optional here only
    /// so that a file without it is reported by validation rather than by the parser.
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub objects: Vec<ObjectDef>,
    /// Fields added to Twenty's standard objects.
    #[serde(default)]
    pub extensions: Vec<ExtensionDef>,
    #[serde(default, alias = "relationships")]
    pub relations: Vec<RelationDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDef {
    pub name_singular: String,
    pub name_plural: String,
    #[serde(default)]
    pub label_singular: Option<String>,
    #[serde(default)]
    pub label_plural: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionDef {
    pub object_name: String,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDef {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub is_unique: Option<bool>,
    /// SELECT / MULTI_SELECT: `{label, value, color, position}` objects (kept as JSON so that a legacy list of
    /// strings is reported by validation).
    #[serde(default)]
    pub options: Option<Vec<Value>>,
    #[serde(default)]
    pub default_value: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationDef {
    pub from_object: String,
    pub from_field: String,
    #[serde(default)]
    pub from_label: Option<String>,
    #[serde(default)]
    pub from_icon: Option<String>,
    pub to_object: String,
    /// Label (and, camel-cased by Twenty, name) of the inverse field Twenty adds on the target.
    #[serde(default)]
    pub to_field_label: Option<String>,
    #[serde(default)]
    pub to_field_icon: Option<String>,
    #[serde(rename = "type")]
    pub relation_type: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("CRM model manifest is not valid JSON of the expected shape: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("CRM model manifest is invalid:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Manifest {
    /// The embedded manifest, validated.
    pub fn load() -> Result<Self, ManifestError> {
        Self::parse(MANIFEST_JSON)
    }

    /// Parses and validates a manifest; every problem is reported, one line each.
    pub fn parse(json: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = serde_json::from_str(json)?;
        let problems = manifest.problems();
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// The version, once validated (0 only for an invalid manifest).
    pub fn version(&self) -> i32 {
        self.version.unwrap_or(0)
    }

    pub fn object(&self, name_singular: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.name_singular == name_singular)
    }

    /// The fields the manifest adds to `object` (a custom object's own fields or a standard object's extension).
    pub fn fields_of(&self, object: &str) -> Vec<&FieldDef> {
        let own = self.object(object).map(|o| o.fields.iter());
        let extended = self
            .extensions
            .iter()
            .filter(|e| e.object_name == object)
            .flat_map(|e| e.fields.iter());
        own.into_iter().flatten().chain(extended).collect()
    }

    /// Everything wrong with the manifest, for current Twenty.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.version {
            Some(v) if v >= 1 => {}
            Some(v) => problems.push(format!("version {v} must be 1 or more")),
            None => problems.push("missing top-level `version`".into()),
        }
        let mut singulars = HashSet::new();
        let mut plurals = HashSet::new();
        for object in &self.objects {
            let at = format!("object {}", object.name_singular);
            check_name(&mut problems, &at, &object.name_singular);
            check_name(&mut problems, &at, &object.name_plural);
            if object.name_singular == object.name_plural {
                problems.push(format!("{at}: nameSingular and namePlural must differ"));
            }
            if STANDARD_OBJECTS.contains(&object.name_singular.as_str()) {
                problems.push(format!(
                    "{at}: a standard object; extend it under `extensions`"
                ));
            }
            if !singulars.insert(object.name_singular.as_str())
                || !plurals.insert(object.name_plural.as_str())
            {
                problems.push(format!("{at}: defined twice"));
            }
            for (key, label) in [
                ("labelSingular", &object.label_singular),
                ("labelPlural", &object.label_plural),
            ] {
                if label.as_deref().is_none_or(|l| l.trim().is_empty()) {
                    problems.push(format!("{at}: missing {key}"));
                }
            }
            check_fields(&mut problems, &at, &object.fields, true);
        }
        let mut extended = HashSet::new();
        for extension in &self.extensions {
            let at = format!("extension of {}", extension.object_name);
            if !STANDARD_OBJECTS.contains(&extension.object_name.as_str()) {
                problems.push(format!("{at}: not a standard Twenty object"));
            }
            if !extended.insert(extension.object_name.as_str()) {
                problems.push(format!("{at}: extended twice"));
            }
            check_fields(&mut problems, &at, &extension.fields, false);
        }
        self.check_relations(&mut problems);
        problems
    }

    fn check_relations(&self, problems: &mut Vec<String>) {
        let known = |name: &str| self.object(name).is_some() || STANDARD_OBJECTS.contains(&name);
        // Field names per object, including the inverse fields the relations add, to catch collisions.
        let mut names: HashMap<&str, HashSet<String>> = HashMap::new();
        for object in &self.objects {
            names.entry(&object.name_singular).or_default().extend(
                object
                    .fields
                    .iter()
                    .map(|f| f.name.clone())
                    .chain(BUILT_IN_FIELDS.iter().map(|f| f.to_string())),
            );
        }
        for extension in &self.extensions {
            names
                .entry(&extension.object_name)
                .or_default()
                .extend(extension.fields.iter().map(|f| f.name.clone()));
        }
        for relation in &self.relations {
            let at = format!("relation {}.{}", relation.from_object, relation.from_field);
            check_name(problems, &at, &relation.from_field);
            for (end, object) in [
                ("fromObject", &relation.from_object),
                ("toObject", &relation.to_object),
            ] {
                if !known(object) {
                    problems.push(format!(
                        "{at}: {end} {object} is neither in the manifest nor a standard object"
                    ));
                }
            }
            if !matches!(
                relation.relation_type.as_str(),
                "MANY_TO_ONE" | "ONE_TO_MANY"
            ) {
                problems.push(format!(
                    "{at}: type {} is not MANY_TO_ONE or ONE_TO_MANY",
                    relation.relation_type
                ));
            }
            for (key, value) in [
                ("fromLabel", &relation.from_label),
                ("toFieldLabel", &relation.to_field_label),
                ("toFieldIcon", &relation.to_field_icon),
            ] {
                if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    problems.push(format!("{at}: missing {key}"));
                }
            }
            if !names
                .entry(&relation.from_object)
                .or_default()
                .insert(relation.from_field.clone())
            {
                problems.push(format!(
                    "{at}: {} already has a field {}",
                    relation.from_object, relation.from_field
                ));
            }
            if let Some(label) = &relation.to_field_label {
                let inverse = camel_case(label);
                if !names
                    .entry(&relation.to_object)
                    .or_default()
                    .insert(inverse.clone())
                {
                    problems.push(format!(
                        "{at}: the inverse field {inverse} collides on {}",
                        relation.to_object
                    ));
                }
            }
        }
    }
}

fn check_fields(problems: &mut Vec<String>, at: &str, fields: &[FieldDef], custom: bool) {
    let mut seen = HashSet::new();
    for field in fields {
        let at = format!("{at}, field {}", field.name);
        check_name(problems, &at, &field.name);
        if !seen.insert(field.name.as_str()) {
            problems.push(format!("{at}: defined twice"));
        }
        if custom && BUILT_IN_FIELDS.contains(&field.name.as_str()) {
            problems.push(format!(
                "{at}: Twenty creates this field on every custom object; reuse the built-in one"
            ));
        }
        if field.label.as_deref().is_none_or(|l| l.trim().is_empty()) {
            problems.push(format!("{at}: missing label"));
        }
        let kind = field.field_type.as_str();
        if !FIELD_TYPES.contains(&kind) {
            problems.push(format!(
                "{at}: type {kind} is not a current Twenty field type"
            ));
        }
        let is_select = matches!(kind, "SELECT" | "MULTI_SELECT");
        let values = match (&field.options, is_select) {
            (Some(options), true) => check_options(problems, &at, options),
            (None, true) => {
                problems.push(format!("{at}: a {kind} field needs options"));
                Vec::new()
            }
            (Some(_), false) => {
                problems.push(format!("{at}: options on a {kind} field"));
                Vec::new()
            }
            (None, false) => Vec::new(),
        };
        if let Some(default) = &field.default_value {
            check_default(problems, &at, kind, default, &values);
        }
    }
}

/// The option values, after reporting options that are not `{label, value, color, position}` objects.
fn check_options(problems: &mut Vec<String>, at: &str, options: &[Value]) -> Vec<String> {
    let mut values = Vec::new();
    for (i, option) in options.iter().enumerate() {
        let Some(option) = option.as_object() else {
            problems.push(format!(
                "{at}: option {i} ({option}) must be an object {{label, value, color, position}}"
            ));
            continue;
        };
        let value = option.get("value").and_then(Value::as_str).unwrap_or("");
        if !is_option_value(value) {
            problems.push(format!(
                "{at}: option {i} has an invalid value {value:?} (UPPER_SNAKE, at most 63 characters)"
            ));
        }
        if !option
            .get("label")
            .and_then(Value::as_str)
            .is_some_and(is_option_label)
        {
            problems.push(format!(
                "{at}: option {i} needs a label of 1-63 characters without a comma"
            ));
        }
        if option.contains_key("id") {
            problems.push(format!(
                "{at}: option {i} has an id; ids are given when the options are sent"
            ));
        }
        if !option
            .get("color")
            .and_then(Value::as_str)
            .is_some_and(|c| OPTION_COLORS.contains(&c))
        {
            problems.push(format!("{at}: option {i} has no valid color"));
        }
        if option.get("position").and_then(Value::as_i64).is_none() {
            problems.push(format!("{at}: option {i} has no integer position"));
        }
        if values.contains(&value.to_string()) {
            problems.push(format!("{at}: option value {value} twice"));
        }
        values.push(value.to_string());
    }
    values
}

fn check_default(
    problems: &mut Vec<String>,
    at: &str,
    kind: &str,
    default: &Value,
    options: &[String],
) {
    fn quoted(v: &Value) -> Option<&str> {
        v.as_str()
            .filter(|s| s.len() >= 2 && s.starts_with('\'') && s.ends_with('\''))
            .map(|s| &s[1..s.len() - 1])
    }
    let ok = match kind {
        "TEXT" => quoted(default).is_some(),
        "SELECT" => match quoted(default) {
            Some(value) => {
                if !options.iter().any(|o| o == value) {
                    problems.push(format!("{at}: default {value} is not one of the options"));
                }
                true
            }
            None => false,
        },
        "MULTI_SELECT" => default
            .as_array()
            .is_some_and(|values| values.iter().all(|v| quoted(v).is_some())),
        "NUMBER" | "NUMERIC" | "RATING" => default.is_number(),
        "BOOLEAN" => default.is_boolean(),
        "DATE_TIME" | "DATE" => default.as_str() == Some("now") || quoted(default).is_some(),
        "UUID" => default.as_str() == Some("uuid"),
        "RAW_JSON" => default.is_object() || default.is_null(),
        _ => true,
    };
    if !ok {
        problems.push(format!(
            "{at}: default {default} is not a valid {kind} default (text and select defaults are quoted: \"'VALUE'\")"
        ));
    }
}

/// Twenty metadata names: camelCase, starting with a lowercase letter, letters and digits only, and none of
/// Twenty's reserved names (Twenty answers "This name is reserved" and stops the whole apply there).
fn check_name(problems: &mut Vec<String>, at: &str, name: &str) {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid {
        problems.push(format!("{at}: name {name:?} is not camelCase"));
    }
    if RESERVED_NAMES.contains(&name) {
        problems.push(format!(
            "{at}: name {name:?} is reserved by Twenty; choose another (e.g. {name}Code)"
        ));
    }
}

/// Twenty's reserved metadata names (twenty-shared `reserved-metadata-name-keywords.constant.ts`): its core
/// object names, singular and plural, and a few words of its own. Matched exactly (names are camelCase).
pub const RESERVED_NAMES: &[&str] = &[
    "approvedAccessDomain",
    "approvedAccessDomains",
    "appToken",
    "appTokens",
    "billingCustomer",
    "billingCustomers",
    "billingEntitlement",
    "billingEntitlements",
    "billingMeter",
    "billingMeters",
    "billingProduct",
    "billingProducts",
    "billingSubscription",
    "billingSubscriptions",
    "billingSubscriptionItem",
    "billingSubscriptionItems",
    "featureFlag",
    "featureFlags",
    "job",
    "jobs",
    "keyValuePair",
    "keyValuePairs",
    "pageLayout",
    "pageLayouts",
    "pageLayoutTab",
    "pageLayoutTabs",
    "pageLayoutWidget",
    "pageLayoutWidgets",
    "postgresCredential",
    "postgresCredentials",
    "twoFactorMethod",
    "twoFactorMethods",
    "user",
    "users",
    "userWorkspace",
    "userWorkspaces",
    "workspace",
    "workspaces",
    "role",
    "roles",
    "userWorkspaceRole",
    "userWorkspaceRoles",
    "plan",
    "plans",
    "event",
    "events",
    "field",
    "fields",
    "link",
    "links",
    "currency",
    "currencies",
    "fullNames",
    "address",
    "addresses",
    "type",
    "types",
    "object",
    "objects",
    "index",
    "relation",
    "relations",
    "aggregate",
];

/// Twenty's option value rule: UPPER_SNAKE (`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`, hence no double underscore),
/// at most 63 characters.
pub fn is_option_value(value: &str) -> bool {
    let mut parts = value.split('_');
    let first_ok = parts.next().is_some_and(|first| {
        first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && first
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    first_ok
        && parts.all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        && value.len() <= 63
}

/// Twenty's option label rule: not blank, at most 63 characters, no comma.
pub fn is_option_label(label: &str) -> bool {
    !label.trim().is_empty() && label.chars().count() <= 63 && !label.contains(',')
}

/// "Voice Calls" → "voiceCalls": the name Twenty derives from a label.
fn camel_case(label: &str) -> String {
    let mut out = String::new();
    for (i, word) in label
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.extend(first.to_lowercase());
            } else {
                out.extend(first.to_uppercase());
            }
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The founder's model, as handed over (read at run time: it lives beside the repository, not in it).
    fn legacy() -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/crm-data-model.legacy.json"
        );
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    #[test]
    fn the_shipped_manifest_is_valid() {
        let manifest = Manifest::load().expect("config/crm-model.json is valid");
        assert_eq!(manifest.version(), 2);
        assert_eq!(manifest.objects.len(), 7);
        for synced in ["person", "sallaProduct", "sallaOrder", "sallaCart"] {
            let external = manifest
                .fields_of(synced)
                .into_iter()
                .find(|f| f.name == "externalId")
                .unwrap_or_else(|| panic!("{synced} has externalId"));
            assert_eq!(
                (external.field_type.as_str(), external.is_unique),
                ("TEXT", Some(true))
            );
        }
    }

    #[test]
    fn the_legacy_model_fails_for_the_documented_reasons() {
        let Err(ManifestError::Invalid(problems)) = Manifest::parse(&legacy()) else {
            panic!("the legacy model must not validate");
        };
        let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
        assert!(has("missing top-level `version`"), "{problems:#?}");
        assert!(
            has("sallaProduct, field status: option 0 (\"ACTIVE\") must be an object"),
            "{problems:#?}"
        );
        assert!(
            has("sallaProduct, field status: default \"ACTIVE\" is not a valid SELECT default"),
            "{problems:#?}"
        );
        assert!(
            has("sallaOrder, field currency: default \"SAR\""),
            "{problems:#?}"
        );
        assert!(
            has("sallaOrder, field currency: name \"currency\" is reserved by Twenty"),
            "{problems:#?}"
        );
        assert!(
            has("sallaProduct, field name: Twenty creates this field on every custom object"),
            "{problems:#?}"
        );
        assert!(
            has("agentSetting, field callTriggers: default"),
            "{problems:#?}"
        );
        assert!(
            has("relation voiceCall.contact: missing fromLabel"),
            "{problems:#?}"
        );
    }

    fn with(mutate: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut json: Value = serde_json::from_str(MANIFEST_JSON).unwrap();
        mutate(&mut json);
        match Manifest::parse(&json.to_string()) {
            Err(ManifestError::Invalid(problems)) => problems,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn validation_catches_each_rule() {
        let problems = with(|m| m["objects"][0]["fields"][0]["name"] = "agent_id".into());
        assert!(problems[0].contains("is not camelCase"), "{problems:?}");
        let problems = with(|m| {
            let first = m["objects"][0].clone();
            m["objects"].as_array_mut().unwrap().push(first);
        });
        assert!(
            problems.iter().any(|p| p.contains("defined twice")),
            "{problems:?}"
        );
        let problems = with(|m| m["relations"][0]["toObject"] = "invoice".into());
        assert!(
            problems[0]
                .contains("toObject invoice is neither in the manifest nor a standard object"),
            "{problems:?}"
        );
        let problems = with(|m| m["extensions"][0]["fields"][0]["type"] = "EMAIL".into());
        assert!(
            problems[0].contains("not a current Twenty field type"),
            "{problems:?}"
        );
        let problems = with(|m| m["version"] = Value::Null);
        assert!(problems[0].contains("version"), "{problems:?}");
        let problems = with(|m| m["objects"][0]["fields"][0]["name"] = "currency".into());
        assert!(
            problems[0].contains("is reserved by Twenty"),
            "{problems:?}"
        );
        let problems = with(|m| m["objects"][0]["nameSingular"] = "event".into());
        assert!(
            problems.iter().any(|p| p.contains("\"event\" is reserved")),
            "{problems:?}"
        );
    }

    #[test]
    fn option_values_and_labels_follow_twentys_rules() {
        for good in ["ACTIVE", "IN_PROGRESS", "A1", "TIER_2_GOLD"] {
            assert!(is_option_value(good), "{good}");
        }
        for bad in [
            "active",
            "_ACTIVE",
            "IN__PROGRESS",
            "ACTIVE_",
            "1ST",
            "",
            &"A".repeat(64),
        ] {
            assert!(!is_option_value(bad), "{bad}");
        }
        assert!(is_option_label("In progress"));
        for bad in ["", "  ", "Red, green", &"x".repeat(64)] {
            assert!(!is_option_label(bad), "{bad:?}");
        }
        let problems = with(|m| {
            m["objects"][1]["fields"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|f| f["options"].is_array())
                .expect("a SELECT field")["options"][0]["label"] = "Yes, really".into()
        });
        assert!(
            problems.iter().any(|p| p.contains("without a comma")),
            "{problems:?}"
        );
    }

    #[test]
    fn labels_become_camel_case_names() {
        assert_eq!(camel_case("Voice Calls"), "voiceCalls");
        assert_eq!(camel_case("Workflow Executions"), "workflowExecutions");
    }
}
