//! The provisioning `crm` step with Twenty, against the fake Twenty (`fake_twenty.rs`): a workspace with its
//! owner, activated, onboarding COMPLETED (asserted), an Admin API key stored sealed; a crash after any
//! sub-step resumes without a second user or workspace; the older Twenty gets the older call shapes; a
//! missing capability is named; the metadata API's duplicate errors are recognised in both shapes.

use std::time::Duration;

use serde_json::{Value, json};
use wosool::Role;
use wosool::crm::twenty::client::rest_data;
use wosool::crm::twenty::{CallOptions, MetadataApi, TwentyClient, TwentyCrm, TwentyError};
use wosool::provisioning::{CrmBackend, StepOutcome};
use wosool::secrets::Keyring;
use wosool::tenancy::{Tenant, TenantId};

use crate::fake_twenty::{DuplicateShape, FakeTwentyServer, Version};
use crate::helpers::{self, TestApp};

/// The step named `name` of a provisioning run, once the run is visible.
async fn provisioning_step(app: &TestApp, provisioning_id: &str, name: &str) -> Value {
    helpers::run_steps(app, provisioning_id)
        .await
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .expect("step")
        .clone()
}

/// An app without a worker and a tenant registered in it (the test drives the `crm` step itself), and the
/// `TwentyCrm` the app would use, with no retries inside a call (a failure is the crash).
async fn driven(twenty: &FakeTwentyServer, names: &[&str]) -> (TestApp, TwentyCrm, Vec<Tenant>) {
    driven_with(twenty, names, &[]).await
}

/// `driven`, with more settings for the `TwentyCrm`.
async fn driven_with(
    twenty: &FakeTwentyServer,
    names: &[&str],
    settings: &[(&str, &str)],
) -> (TestApp, TwentyCrm, Vec<Tenant>) {
    let app = helpers::spawn_app_with(Role::Api, twenty.env()).await;
    let env = twenty.env();
    let config = helpers::test_config(&app.database, |e| {
        env(e);
        e.push(("WOSOOL_CRM__MAX_RETRIES".into(), "0".into()));
        e.extend(settings.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    });
    let crm =
        TwentyCrm::new(&wosool::core::Core::new(config.clone(), app.db.clone(), None).unwrap())
            .expect("TwentyCrm");
    let mut tenants = vec![];
    for name in names {
        let (status, body) = app
            .register(json!({ "organization_name": name, "admin_email": "owner@example.sa" }))
            .await;
        assert_eq!(status, 202, "{body}");
        let id: TenantId = body["tenant_id"].as_str().unwrap().parse().unwrap();
        let tenant: Tenant = sqlx::query_as("SELECT * FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
        tenants.push(tenant);
    }
    (app, crm, tenants)
}

/// The client of the one instance `crm.base_url` stands for.
fn client_of(crm: &TwentyCrm) -> TwentyClient {
    crm.instances()
        .get(wosool::config::DEFAULT_CRM_INSTANCE)
        .expect("the default instance")
        .client
        .clone()
}

fn keyring() -> Keyring {
    let config = helpers::test_config("unused", |env| {
        env.push((
            "WOSOOL_SECRETS__ENCRYPTION_KEYS".into(),
            format!("[\"{}\"]", crate::fake_twenty::ENCRYPTION_KEY),
        ))
    });
    Keyring::from_config(&config.secrets).unwrap()
}

/// The tenant's stored credentials, checked against the fake: one user, one workspace, onboarding
/// COMPLETED, and the API key selects that workspace and reads its records over REST.
async fn assert_provisioned(app: &TestApp, twenty: &FakeTwentyServer, tenant: &Tenant) -> String {
    let step: String = sqlx::query_scalar("SELECT step FROM crm_workspaces WHERE tenant_id = $1")
        .bind(tenant.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(step, "ready");
    let credentials = wosool::crm::workspace::credentials(&app.db, &keyring(), tenant.id)
        .await
        .unwrap()
        .expect("credentials stored");
    let email = format!("owner+{}@crm.wosool.invalid", tenant.slug);
    let api_key_id: String =
        sqlx::query_scalar("SELECT api_key_id FROM crm_workspaces WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    {
        let fake = twenty.lock();
        let users: Vec<_> = fake.users.iter().filter(|u| u.email == email).collect();
        assert_eq!(users.len(), 1, "one owner user");
        let owned: Vec<_> = fake
            .workspaces
            .iter()
            .filter(|ws| ws.owner == users[0].id)
            .collect();
        assert_eq!(owned.len(), 1, "one workspace");
        assert_eq!(owned[0].id, credentials.workspace_id);
        assert_eq!(owned[0].status, "ACTIVE");
        assert_eq!(fake.onboarding_status(&owned[0].id), "COMPLETED");
        let live: Vec<_> = fake
            .api_keys
            .iter()
            .filter(|k| k.workspace == owned[0].id && !k.revoked)
            .map(|k| k.id.as_str())
            .collect();
        assert_eq!(
            live,
            [api_key_id.as_str()],
            "one live API key, the stored one: none left behind by a lost answer"
        );
        assert_eq!(
            fake.workspace_of_token(&credentials.api_key).as_deref(),
            Some(credentials.workspace_id.as_str())
        );
    }
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT api_key_token FROM crm_workspaces WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        !String::from_utf8_lossy(&sealed).contains(&credentials.api_key),
        "the token is stored sealed"
    );
    let response = reqwest::Client::new()
        .get(format!("{}/rest/companies", twenty.url()))
        .bearer_auth(&credentials.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["data"]["companies"].is_array(), "{body}");
    credentials.workspace_id
}

#[tokio::test]
async fn registration_provisions_a_twenty_workspace_with_no_onboarding_left_and_a_sealed_api_key() {
    let twenty = FakeTwentyServer::start().await;
    let app = helpers::spawn_app_with(Role::All, twenty.env()).await;
    let registered = app.register_ready("Twenty Store").await;
    let tenant_id: TenantId = registered["tenant_id"].as_str().unwrap().parse().unwrap();
    let tenant: Tenant = sqlx::query_as("SELECT * FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let workspace = assert_provisioned(&app, &twenty, &tenant).await;

    let crm = provisioning_step(&app, registered["provisioning_id"].as_str().unwrap(), "crm").await;
    assert_eq!(crm["status"], "succeeded", "{crm}");
    assert_eq!(crm["detail"], format!("workspace {workspace} on default"));
    let fake = twenty.lock();
    let ws = fake.workspace(&workspace).unwrap();
    assert_eq!(ws.display_name, "Twenty Store");
    assert!(ws.member_name.is_some(), "the owner's member is named");
    let key = fake
        .api_keys
        .iter()
        .find(|k| k.workspace == workspace)
        .unwrap();
    let admin = ws.roles.iter().find(|(_, label)| label == "Admin").unwrap();
    assert_eq!(
        key.role_id.as_deref(),
        Some(admin.0.as_str()),
        "an Admin key"
    );
    assert!(
        key.expires_at.starts_with("21"),
        "a long-lived key: {}",
        key.expires_at
    );
    assert_eq!(fake.calls("triggerInstallAppsOnboardingStep"), 1);
    // v2.43 has no skipInviteTeamOnboardingStep: INVITE_TEAM clears by inviting nobody.
    assert_eq!(fake.calls("sendInvitations"), 1);
    assert_eq!(fake.calls("skipInviteTeamOnboardingStep"), 0);
    // The profile step clears through /metadata's member settings (v2.x).
    assert_eq!(fake.calls("updateWorkspaceMemberSettings"), 1);
    assert_eq!(
        ws.member_name,
        Some(json!({ "firstName": "Wosool", "lastName": "Twenty Store" }))
    );
}

#[tokio::test]
async fn a_crash_after_any_sub_step_resumes_without_a_second_user_or_workspace() {
    let operations = [
        "signUp",
        "signUpInNewWorkspace",
        "getAuthTokensFromLoginToken",
        "activateWorkspace",
        "skipSyncEmailOnboardingStep",
        "getRoles",
        "createApiKey",
        "generateApiKeyToken",
    ];
    let names: Vec<String> = operations.iter().map(|op| format!("Crash {op}")).collect();
    let twenty = FakeTwentyServer::start().await;
    // A valid Enterprise key: more than five workspaces on one instance (this test is about crashes).
    twenty.lock().max_workspaces = None;
    let (app, crm, tenants) = driven_with(
        &twenty,
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("WOSOOL_CRM__MAX_WORKSPACES", "100")],
    )
    .await;
    for (operation, tenant) in operations.iter().zip(&tenants) {
        // The call happens in Twenty but its answer is lost: as if the process died right after.
        twenty.lock().lose_answer_next(operation, 1);
        let error = crm
            .provision_workspace(tenant)
            .await
            .expect_err("the lost answer fails the run")
            .to_string();
        assert!(error.contains(operation), "{operation}: {error}");
        let last_error: Option<String> =
            sqlx::query_scalar("SELECT last_error FROM crm_workspaces WHERE tenant_id = $1")
                .bind(tenant.id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(last_error.as_deref(), Some(error.as_str()));

        let outcome = crm
            .provision_workspace(tenant)
            .await
            .map_err(|e| e.to_string());
        let workspace = assert_provisioned(&app, &twenty, tenant).await;
        assert_eq!(
            outcome,
            Ok(StepOutcome::Done(Some(format!(
                "workspace {workspace} on default"
            )))),
            "{operation}"
        );
        let last_error: Option<String> =
            sqlx::query_scalar("SELECT last_error FROM crm_workspaces WHERE tenant_id = $1")
                .bind(tenant.id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(last_error, None);
    }
    // A ready workspace provisions again as a no-op (no new call to create anything).
    let creates = twenty.lock().calls("signUpInNewWorkspace");
    assert!(crm.provision_workspace(&tenants[0]).await.is_ok());
    assert_eq!(twenty.lock().calls("signUpInNewWorkspace"), creates);
    assert_eq!(twenty.lock().workspaces.len(), tenants.len());
}

#[tokio::test]
async fn the_older_twenty_gets_the_older_call_shapes_and_resumes_by_signing_in() {
    let twenty = FakeTwentyServer::start().await;
    twenty.lock().version = Version::Older;
    // Whether v1.x refused anonymous introspection is not known; the call shapes are what this is about.
    twenty.lock().production = false;
    let (app, crm, tenants) = driven(&twenty, &["Older Store"]).await;
    twenty.lock().lose_answer_next("signUp", 1);
    assert!(crm.provision_workspace(&tenants[0]).await.is_err());
    let outcome = crm.provision_workspace(&tenants[0]).await;
    assert!(matches!(outcome, Ok(StepOutcome::Done(_))), "{outcome:?}");
    let workspace = assert_provisioned(&app, &twenty, &tenants[0]).await;
    let fake = twenty.lock();
    let key = fake
        .api_keys
        .iter()
        .find(|k| k.workspace == workspace)
        .unwrap();
    assert_eq!(key.role_id, None, "no roleId where keys have none");
    assert_eq!(fake.calls("sendInvitations"), 1);
    assert_eq!(fake.calls("skipInviteTeamOnboardingStep"), 0);
    assert_eq!(fake.calls("triggerInstallAppsOnboardingStep"), 0);
    assert_eq!(fake.calls("signIn"), 0);
    assert!(
        fake.calls("getLoginTokenFromCredentials") >= 1,
        "signed in after USER_ALREADY_EXISTS"
    );
}

#[tokio::test]
async fn a_missing_capability_fails_the_step_naming_it_before_creating_anything() {
    let twenty = FakeTwentyServer::start().await;
    // A Twenty that answers anonymous introspection (not production): the lack is known before anything.
    twenty.lock().production = false;
    twenty.lock().hide("generateApiKeyToken");
    let (app, crm, tenants) = driven(&twenty, &["Lacking Store"]).await;
    let error = crm
        .provision_workspace(&tenants[0])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("generateApiKeyToken"), "{error}");
    assert!(twenty.lock().users.is_empty(), "nothing created");
    let last_error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM crm_workspaces WHERE tenant_id = $1")
            .bind(tenants[0].id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(last_error.unwrap().contains("generateApiKeyToken"));
}

#[tokio::test]
async fn on_a_production_twenty_a_missing_capability_is_found_with_the_first_workspace_token() {
    let twenty = FakeTwentyServer::start().await;
    assert!(
        twenty.lock().production,
        "the official image runs as production"
    );
    twenty.lock().hide("generateApiKeyToken");
    let (_app, crm, tenants) = driven(&twenty, &["Production Store"]).await;
    let error = crm
        .provision_workspace(&tenants[0])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("generateApiKeyToken"), "{error}");
    let fake = twenty.lock();
    assert_eq!(
        fake.workspaces.len(),
        1,
        "the workspace exists; no key was made"
    );
    assert!(fake.api_keys.is_empty());
    assert_eq!(
        fake.calls("__schema"),
        2,
        "anonymously (refused), then with the workspace token"
    );
}

#[tokio::test]
async fn onboarding_left_pending_fails_the_step_naming_the_pending_status() {
    let twenty = FakeTwentyServer::start().await;
    twenty.lock().ignore_profile_update = true;
    let (app, crm, tenants) = driven(&twenty, &["Wizard Store"]).await;
    let error = crm
        .provision_workspace(&tenants[0])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("PROFILE_CREATION"), "{error}");
    let (step, key): (String, Option<String>) =
        sqlx::query_as("SELECT step, api_key_id FROM crm_workspaces WHERE tenant_id = $1")
            .bind(tenants[0].id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        step, "activated",
        "no API key before onboarding is complete"
    );
    assert_eq!(key, None);
    // Once Twenty clears it, the next run goes on.
    twenty.lock().ignore_profile_update = false;
    assert!(crm.provision_workspace(&tenants[0]).await.is_ok());
    assert_provisioned(&app, &twenty, &tenants[0]).await;
}

#[tokio::test]
async fn with_twentys_database_configured_flags_the_mutations_leave_are_deleted_with_sql() {
    let twenty = FakeTwentyServer::start().await;
    let twenty_db_url = helpers::database_url(&helpers::fresh_database().await);
    let twenty_db = twenty.store_onboarding_flags_in(&twenty_db_url).await;
    // PROFILE_CREATION survives the mutations (as when a version's member update does not clear it).
    twenty.lock().ignore_profile_update = true;
    // Another workspace's flags and a config variable, which the fallback must leave alone.
    let (other_user, other_workspace) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        r#"INSERT INTO core."keyValuePair" ("userId", "workspaceId", key, value, type) VALUES
           ($1, $2, 'ONBOARDING_CREATE_PROFILE_PENDING', 'true', 'USER_VARIABLE'),
           ($1, NULL, 'ONBOARDING_CONNECT_ACCOUNT_PENDING', 'true', 'USER_VAR'),
           (NULL, NULL, 'IS_MULTIWORKSPACE_ENABLED', 'true', 'CONFIG_VARIABLE')"#,
    )
    .bind(other_user)
    .bind(other_workspace)
    .execute(&twenty_db)
    .await
    .unwrap();

    let (app, crm, tenants) = driven_with(
        &twenty,
        &["Fallback Store"],
        &[("WOSOOL_CRM__DATABASE_URL", &twenty_db_url)],
    )
    .await;
    crm.provision_workspace(&tenants[0]).await.unwrap();
    let workspace = assert_provisioned(&app, &twenty, &tenants[0]).await;

    let left: Vec<(Option<uuid::Uuid>, Option<uuid::Uuid>, String)> = sqlx::query_as(
        r#"SELECT "userId", "workspaceId", key FROM core."keyValuePair" ORDER BY key"#,
    )
    .fetch_all(&twenty_db)
    .await
    .unwrap();
    assert!(
        !left
            .iter()
            .any(|(_, ws, _)| ws.is_some_and(|ws| ws.to_string() == workspace)),
        "the workspace's flags are gone: {left:?}"
    );
    assert_eq!(
        left.iter()
            .map(|(_, _, key)| key.as_str())
            .collect::<Vec<_>>(),
        [
            "IS_MULTIWORKSPACE_ENABLED",
            "ONBOARDING_CONNECT_ACCOUNT_PENDING",
            "ONBOARDING_CREATE_PROFILE_PENDING"
        ],
        "only the new workspace's and its owner's flags were deleted"
    );
}

#[tokio::test]
async fn a_new_select_option_reaches_the_workspace_through_update_one_field() {
    let twenty = FakeTwentyServer::start().await;
    let (app, crm, tenants) = driven(&twenty, &["Options Store"]).await;
    crm.provision_workspace(&tenants[0]).await.unwrap();
    let credentials = wosool::crm::workspace::credentials(&app.db, &keyring(), tenants[0].id)
        .await
        .unwrap()
        .unwrap();
    let api = wosool::crm::bridge::TwentyMetadata::new(client_of(&crm), &credentials.api_key);
    let options = |twenty: &FakeTwentyServer| -> Vec<(String, String)> {
        let fake = twenty.lock();
        let product = fake
            .object(&credentials.workspace_id, "sallaProduct")
            .expect("sallaProduct");
        let status = product.fields.iter().find(|f| f.name == "status").unwrap();
        status
            .options
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["value"].as_str().unwrap().to_owned(),
                    o["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    wosool::crm::model::apply(&api, &wosool::crm::model::Manifest::load().unwrap())
        .await
        .unwrap();
    let before = options(&twenty);

    let v2 = crate::crm_model::manifest_with_a_new_option();
    let report = wosool::crm::model::apply(&api, &v2).await.unwrap();
    assert_eq!((report.options_added, report.created()), (1, 1));
    let after = options(&twenty);
    assert_eq!(
        after[..before.len()],
        before[..],
        "ids kept: Twenty's records keep their values"
    );
    assert_eq!(after.last().unwrap().0, "DISCONTINUED");
    assert_eq!(twenty.lock().calls("updateOneField"), 1);
    assert_eq!(
        wosool::crm::model::apply(&api, &v2)
            .await
            .unwrap()
            .created(),
        0
    );
    assert_eq!(twenty.lock().calls("updateOneField"), 1);
}

#[tokio::test]
async fn keys_left_behind_by_lost_answers_are_reused_and_the_extra_ones_revoked() {
    let twenty = FakeTwentyServer::start().await;
    let (app, crm, tenants) = driven(&twenty, &["Lost Keys Store"]).await;
    twenty.lock().lose_answer_next("createApiKey", 1);
    crm.provision_workspace(&tenants[0]).await.unwrap_err();
    // A second orphan (an even earlier attempt), with a shorter life: the longer-lived one is kept.
    let (orphan, workspace) = {
        let mut fake = twenty.lock();
        let kept = fake.api_keys[0].clone();
        let mut orphan = kept.clone();
        orphan.id = uuid::Uuid::new_v4().to_string();
        orphan.expires_at = "2030-01-01T00:00:00.000Z".into();
        fake.api_keys.push(orphan.clone());
        (orphan.id, kept.workspace)
    };
    crm.provision_workspace(&tenants[0]).await.unwrap();
    assert_eq!(
        assert_provisioned(&app, &twenty, &tenants[0]).await,
        workspace
    );
    let fake = twenty.lock();
    assert_eq!(fake.calls("createApiKey"), 1, "the first key was reused");
    assert_eq!(fake.calls("revokeApiKey"), 1);
    assert!(fake.api_keys.iter().any(|k| k.id == orphan && k.revoked));
}

#[tokio::test]
async fn without_twenty_the_crm_step_is_skipped() {
    let app = helpers::spawn_app_with(Role::All, |_| {}).await;
    let registered = app.register_ready("No Twenty Store").await;
    let crm = provisioning_step(&app, registered["provisioning_id"].as_str().unwrap(), "crm").await;
    assert_eq!(crm["status"], "skipped");
    assert_eq!(crm["detail"], "skipped: not configured");
}

#[tokio::test]
async fn metadata_duplicates_are_already_exists_in_both_error_shapes() {
    for shape in [DuplicateShape::Conflict, DuplicateShape::ValidationFailed] {
        let twenty = FakeTwentyServer::start().await;
        twenty.lock().duplicates = shape;
        let (app, crm, tenants) = driven(&twenty, &["Model Store"]).await;
        crm.provision_workspace(&tenants[0]).await.unwrap();
        let credentials = wosool::crm::workspace::credentials(&app.db, &keyring(), tenants[0].id)
            .await
            .unwrap()
            .unwrap();
        let api = MetadataApi::new(client_of(&crm), credentials.api_key);
        let invoice = json!({ "nameSingular": "invoice", "namePlural": "invoices",
            "labelSingular": "Invoice", "labelPlural": "Invoices", "isLabelSyncedWithName": false });
        let created = api.create_object(&invoice).await.unwrap();
        assert!(
            matches!(
                api.create_object(&invoice).await,
                Err(TwentyError::AlreadyExists { .. })
            ),
            "{shape:?}"
        );
        let status = json!({ "objectMetadataId": created.id, "type": "SELECT", "name": "status", "label": "Status",
            "options": [{ "label": "Active", "value": "ACTIVE", "color": "green", "position": 0 }],
            "defaultValue": "'ACTIVE'" });
        api.create_field(&status).await.unwrap();
        assert!(matches!(
            api.create_field(&status).await,
            Err(TwentyError::AlreadyExists { .. })
        ));
        // The built-in `name` of a custom object exists already.
        let name = json!({ "objectMetadataId": created.id, "type": "TEXT", "name": "name", "label": "Name" });
        assert!(matches!(
            api.create_field(&name).await,
            Err(TwentyError::AlreadyExists { .. })
        ));
        // What Twenty rejects is not "already exists".
        let legacy = json!({ "objectMetadataId": created.id, "type": "SELECT", "name": "stage", "label": "Stage",
            "options": ["ACTIVE", "DRAFT"], "defaultValue": "ACTIVE" });
        assert!(matches!(
            api.create_field(&legacy).await,
            Err(TwentyError::GraphQl { .. })
        ));
        let relation = json!({ "objectMetadataId": created.id, "type": "RELATION", "name": "order", "label": "Order",
            "relationCreationPayload": { "type": "MANY_TO_ONE", "targetObjectMetadataId": uuid::Uuid::new_v4(),
                "targetFieldLabel": "Invoices", "targetFieldIcon": "IconFileInvoice" } });
        assert!(matches!(
            api.create_field(&relation).await,
            Err(TwentyError::GraphQl { .. })
        ));
        let objects = api.objects().await.unwrap();
        let invoice = objects
            .iter()
            .find(|o| o.name_singular == "invoice")
            .unwrap();
        assert!(!invoice.is_system, "a custom object is not a system one");
        let status = invoice.field("status").unwrap();
        assert_eq!(status.field_type, "SELECT");
        assert_eq!(status.default_value, Some(json!("'ACTIVE'")));
        assert!(objects.iter().any(|o| o.name_plural == "companies"));
    }
}

#[tokio::test]
async fn the_api_key_upserts_records_in_batches_and_a_429_is_retried_after_retry_after() {
    let twenty = FakeTwentyServer::start().await;
    let (app, crm, tenants) = driven(&twenty, &["Rest Store"]).await;
    // Refused before anything was created: the next run creates the workspace.
    twenty.lock().fail_next("signUpInNewWorkspace", 1);
    assert!(crm.provision_workspace(&tenants[0]).await.is_err());
    assert!(twenty.lock().workspaces.is_empty());
    crm.provision_workspace(&tenants[0]).await.unwrap();
    let workspace = assert_provisioned(&app, &twenty, &tenants[0]).await;
    let token = twenty.lock().api_key_tokens(&workspace)[0].clone();
    assert!(twenty.lock().object(&workspace, "company").is_some());

    let env = twenty.env();
    let config = helpers::test_config(&app.database, env);
    let client = TwentyClient::new(&config.crm.base_url, &config.crm).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    twenty.lock().throttle_rest(1, 0);
    for name in ["First", "Second"] {
        let body = client
            .rest(
                reqwest::Method::POST,
                "/batch/companies",
                &[("upsert", "true")],
                Some(&json!([{ "id": id, "name": name }])),
                &token,
                CallOptions::IDEMPOTENT,
            )
            .await
            .unwrap();
        assert_eq!(
            rest_data(&body).and_then(Value::as_array).map(Vec::len),
            Some(1)
        );
    }
    assert_eq!(
        twenty.lock().calls("POST /rest/batch"),
        3,
        "the 429 was retried"
    );
    let records = twenty.lock().records(&workspace, "companies");
    assert_eq!(records.len(), 1, "upserted by id");
    assert_eq!(records[0]["name"], "Second");

    twenty.lock().slow("GET /rest", Duration::from_millis(10));
    let page = client
        .rest(
            reqwest::Method::GET,
            "/companies",
            &[("limit", "1")],
            None,
            &token,
            CallOptions::IDEMPOTENT,
        )
        .await
        .unwrap();
    assert_eq!(page["data"]["companies"][0]["id"], json!(id));
    assert_eq!(page["totalCount"], 1);
}
