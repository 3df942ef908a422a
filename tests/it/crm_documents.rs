//! Every GraphQL document Wosool sends to Twenty's `/metadata` against the pinned version's published schema
//! (npm `twenty-client-sdk`, rebuilt by `scripts/test`): the ones capability detection sends to that version
//! validate; the ones gated for other versions are exactly the expected few, and the built-in capabilities of
//! the pinned version (used when Twenty refuses anonymous introspection) agree with the schema.

use std::path::Path;

use serde_json::{Value, json};
use wosool::crm::twenty::capabilities::{
    PINNED_CREATE_API_KEY_INPUT, PINNED_MUTATIONS, PINNED_QUERIES, PINNED_USER_FIELDS,
};
use wosool::crm::twenty::documents::{self, Document};
use wosool::crm::twenty::{Capabilities, Endpoint};

use crate::twenty_graphql::{TwentySchema, published};

/// The capabilities a server with `schema` reports to our own introspection document.
fn introspected(schema: &TwentySchema) -> (Capabilities, Value) {
    let answer = schema.execute(
        documents::CAPABILITIES.text,
        None,
        &json!({}),
        false,
        &mut |call| panic!("introspection resolves no root field, not {}", call.name),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let data = answer.body["data"].clone();
    let capabilities = Capabilities::from_introspection(&data).expect("capabilities");
    (capabilities, data)
}

fn metadata_documents() -> impl Iterator<Item = &'static Document> {
    documents::ALL
        .iter()
        .filter(|doc| doc.endpoint == Endpoint::Metadata)
}

#[test]
fn every_document_sent_to_the_pinned_version_validates_against_its_schema() {
    let schema = published();
    let (capabilities, _) = introspected(&schema);
    capabilities
        .require_provisioning()
        .expect("the pinned version offers what provisioning needs");
    let mut failures = vec![];
    let mut for_other_versions = vec![];
    for doc in metadata_documents() {
        if !capabilities.allows(doc.gate) {
            for_other_versions.push(doc);
            continue;
        }
        if let Err(answer) = schema.validate(doc.text, false) {
            failures.push(format!(
                "{} ({:?}): {}",
                doc.operation, doc.gate, answer.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "documents Twenty v{} refuses:\n{}",
        wosool::crm::twenty::PINNED_VERSION,
        failures.join("\n")
    );
    // Sent only where capability detection finds an older (or in-between) shape; each is gated by what the
    // pinned version lacks or has differently.
    let mut names: Vec<String> = for_other_versions
        .iter()
        .map(|doc| format!("{}:{:?}", doc.operation, doc.gate))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "getLoginTokenFromCredentials:MutationLacks(\"getLoginTokenFromCredentials\", \"origin\")",
            "signUpInNewWorkspace:MutationLacks(\"signUpInNewWorkspace\", \"input\")",
            "skipBookOnboardingStep:Mutation(\"skipBookOnboardingStep\")",
            "skipInviteTeamOnboardingStep:Mutation(\"skipInviteTeamOnboardingStep\")",
            "skipSyncEmailOnboardingStep:MutationLacks(\"skipSyncEmailOnboardingStep\", \"isAutoSkipped\")",
            "currentUser:UserLacks(\"availableWorkspaces\")",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>(),
    );
}

#[test]
fn documents_for_older_versions_validate_against_the_older_shapes_where_their_gates_hold() {
    let older = crate::fake_twenty::older_schema();
    let (capabilities, _) = introspected(&older);
    let mut failures = vec![];
    let mut checked = 0;
    for doc in metadata_documents() {
        if capabilities.allows(doc.gate) {
            checked += 1;
            if let Err(answer) = older.validate(doc.text, false) {
                failures.push(format!("{}: {}", doc.operation, answer.body));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 20, "{checked}");
    let pick = |candidates: &[Document]| capabilities.pick(candidates).map(|d| d.text);
    assert_eq!(
        pick(&[documents::AVAILABLE_WORKSPACES, documents::USER_WORKSPACES]),
        Some(documents::USER_WORKSPACES.text)
    );
    assert_eq!(
        pick(&[
            documents::NEW_WORKSPACE_WITH_INPUT,
            documents::NEW_WORKSPACE
        ]),
        Some(documents::NEW_WORKSPACE.text)
    );
}

#[test]
fn the_pinned_capabilities_are_the_published_schemas() {
    let schema = published();
    let (introspected, data) = introspected(&schema);
    let pinned = Capabilities::pinned();
    assert!(pinned.is_provisional() && !introspected.is_provisional());
    let args_of = |kind: &str, name: &str| -> Option<Vec<String>> {
        data["__schema"][kind]["fields"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| {
                let mut args: Vec<String> = f["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["name"].as_str().map(str::to_owned))
                    .collect();
                args.sort();
                args
            })
    };
    for (kind, table) in [
        ("mutationType", PINNED_MUTATIONS),
        ("queryType", PINNED_QUERIES),
    ] {
        for (name, args) in table {
            let mut expected: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            expected.sort();
            assert_eq!(
                args_of(kind, name).as_ref(),
                Some(&expected),
                "{kind} {name}"
            );
        }
    }
    for field in PINNED_CREATE_API_KEY_INPUT {
        assert!(schema.has_field("CreateApiKeyInput", field), "{field}");
    }
    for field in PINNED_USER_FIELDS {
        assert!(schema.has_field("User", field), "{field}");
    }
    for doc in documents::ALL {
        assert_eq!(
            pinned.allows(doc.gate),
            introspected.allows(doc.gate),
            "{} {:?}",
            doc.operation,
            doc.gate
        );
    }
    pinned.require_provisioning().unwrap();
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_graphql_document_is_written_outside_the_documents_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&root, &mut files);
    let mut offenders = vec![];
    for file in files {
        if file.ends_with("crm/twenty/documents.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests may hold GraphQL that is never sent (the proxy's policy cases).
        let code_part = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code_part.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if ["\"query ", "\"mutation ", "\"query{", "\"mutation{"]
                .iter()
                .any(|opening| code.contains(opening))
            {
                offenders.push(format!("{}:{}: {code}", file.display(), number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "GraphQL documents belong in src/crm/twenty/documents.rs, where the schema check sees them:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_validator_refuses_what_twenty_refuses_with_twentys_messages() {
    let schema = published();
    let old_objects = "query Objects {
  objects(paging: { first: 1000 }) { edges { node { id isCustom } } }
}";
    let refused = schema.validate(old_objects, false).unwrap_err();
    assert_eq!(
        refused.status, 200,
        "Twenty's Yoga answers 200 to application/json"
    );
    let errors = refused.body["errors"].as_array().unwrap();
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.contains(
            &"Cannot query field \"isCustom\" on type \"Object\". Did you mean \"isSystem\"?"
        ),
        "{messages:?}"
    );
    assert!(
        messages.contains(
            &"Field \"objects\" argument \"filter\" of type \"ObjectFilter!\" is required, but it was not provided."
        ),
        "{messages:?}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e["locations"].is_array() && e.get("extensions").is_none())
    );
    assert!(refused.body.get("data").is_none());
    // Anonymous on a production Twenty: no suggestions, and no introspection.
    let anonymous = schema.validate(old_objects, true).unwrap_err();
    assert!(
        anonymous.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"] == "Cannot query field \"isCustom\" on type \"Object\"."),
        "{}",
        anonymous.body
    );
    let introspection = schema
        .validate(documents::CAPABILITIES.text, true)
        .unwrap_err();
    assert_eq!(
        introspection.body["errors"][0]["message"],
        "GraphQL introspection has been disabled, but the requested query contained the field \"__schema\"."
    );
    // The same root field twice is refused on /metadata.
    let twice = schema
        .validate("query { a: getRoles { id } b: getRoles { id } }", false)
        .unwrap_err();
    assert_eq!(
        twice.body["errors"][0]["message"],
        "Duplicate root resolver: \"getRoles\""
    );
}
