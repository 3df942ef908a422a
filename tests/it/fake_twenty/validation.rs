//! Twenty's metadata naming and option rules: camelCase names, reserved names, quoted defaults, and the
//! SELECT / MULTI_SELECT option validator.

use std::collections::HashSet;

use serde_json::{Value, json};

pub(super) fn is_camel_case(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

pub(super) fn is_quoted(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() >= 2 && s.starts_with('\'') && s.ends_with('\''))
}

/// Twenty's reserved metadata names (twenty-shared `reserved-metadata-name-keywords.constant.ts`, as of
/// v2.43), transcribed here independently of the manifest's own pre-check.
pub(super) const RESERVED_METADATA_NAMES: &[&str] = &[
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

pub(super) const RESERVED_MESSAGE: &str =
    "This name is reserved. Use a different name or the system will add \"Custom\" suffix.";

const COLORS: [&str; 10] = [
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

/// Twenty's option value rule (`isSnakeCaseString`): `^(?!.*__)[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`.
fn is_upper_snake(value: &str) -> bool {
    let mut parts = value.split('_');
    parts.next().is_some_and(|first| {
        first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && first
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }) && parts.all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// What Twenty's enum validator (`validate-enum-flat-field-metadata.util.ts`) says about SELECT /
/// MULTI_SELECT options, after it filled in missing ids: its messages, empty when the options are valid.
pub(crate) fn option_errors(options: &Value) -> Vec<String> {
    let Some(list) = options.as_array().filter(|l| !l.is_empty()) else {
        return vec!["Options are required for enum fields".into()];
    };
    let mut errors = vec![];
    for option in list {
        if !option.is_object() {
            errors.push("Option must be an object".into());
            continue;
        }
        match &option["id"] {
            Value::String(id) if uuid::Uuid::parse_str(id).is_ok() => {}
            Value::String(_) => errors.push("Option id is invalid".to_owned()),
            _ => errors.push("Option id is required".to_owned()),
        }
        match option["value"].as_str() {
            None => errors.push("Option value is required".into()),
            Some(v) if v.len() > 63 => errors.push("Option value exceeds 63 characters".into()),
            Some(v) if !is_upper_snake(v) => errors.push(format!(
                "Value must be in UPPER_CASE and follow snake_case \"{v}\""
            )),
            Some(_) => {}
        }
        match option["label"].as_str() {
            None => errors.push("Option label is required".into()),
            Some(l) if l.chars().count() > 63 => {
                errors.push("Option label exceeds 63 characters".into())
            }
            Some(l) if l.contains(',') => errors.push("Label must not contain a comma".into()),
            Some(l) if l.trim().is_empty() => errors.push("Label must not be empty".into()),
            Some(_) => {}
        }
        if !option["color"]
            .as_str()
            .is_some_and(|c| COLORS.contains(&c))
        {
            errors.push("Option color is invalid".into());
        }
    }
    for key in ["position", "id", "value"] {
        let values: Vec<&Value> = list.iter().map(|o| &o[key]).collect();
        let distinct: HashSet<String> = values.iter().map(|v| v.to_string()).collect();
        if distinct.len() != values.len() {
            errors.push(format!("Duplicated option {key}"));
        }
    }
    errors
}

/// Twenty fills in a v4 id where an option has none (`{ id: v4(), ...option }`: an explicit `id: null`
/// stays null and is refused).
pub(crate) fn with_option_ids(options: Value) -> Value {
    match options {
        Value::Array(list) => Value::Array(
            list.into_iter()
                .map(|mut option| {
                    if let Some(fields) = option.as_object_mut()
                        && !fields.contains_key("id")
                    {
                        fields.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
                    }
                    option
                })
                .collect(),
        ),
        other => other,
    }
}
