//! `crm::records` against the fake Twenty (which checks note, task, opportunity and target records field by
//! field, as Twenty's data argument processor does): each kind created, listed newest first by cursor, read
//! and edited through the tenant's own workspace; a customer's notes and tasks once the sync created their
//! person; another tenant's record ids not found; no workspace, invalid input, Twenty's failures, throttling
//! and validation errors.

use axum::http::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wosool::Role;
use wosool::crm::records::{
    CrmRecords, CrmRecordsError, Money, RecordInput, RecordKind, TaskStatus,
};
use wosool::crm::sync::CrmSync;
use wosool::crm::sync::records::{SyncObject, record_id};
use wosool::error::ApiError;
use wosool::tenancy::TenantId;

use crate::crm_sync::{SyncTenant, ready_tenant};
use crate::fake_twenty::FakeTwentyServer;
use crate::helpers::{TestApp, spawn_app_with, tenancy_stack, test_config};

struct Setup {
    twenty: FakeTwentyServer,
    app: TestApp,
    records: CrmRecords,
    sync: CrmSync,
}

/// An app provisioning workspaces in the fake Twenty, and the records and sync services of its deployment.
async fn setup() -> Setup {
    let twenty = FakeTwentyServer::start().await;
    let env = twenty.env();
    let app = spawn_app_with(Role::All, |vars| {
        env(vars);
        vars.push(("WOSOOL_JOBS__RETRY_BASE_MS".into(), "10".into()));
    })
    .await;
    let config = test_config(&app.database, twenty.env());
    let stack = tenancy_stack(&config).await;
    let records = CrmRecords::build(&stack.core)
        .expect("builds")
        .expect("Twenty is configured");
    let sync = CrmSync::new(&stack.core).expect("sync builds");
    Setup {
        twenty,
        app,
        records,
        sync,
    }
}

/// The Twenty workspace provisioning gave `tenant`.
async fn workspace_of(app: &TestApp, tenant: TenantId) -> String {
    sqlx::query_scalar("SELECT workspace_id FROM crm_workspaces WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn insert_customer(tenant: &SyncTenant, salla_id: i64) {
    sqlx::query(
        "INSERT INTO customers (salla_id, first_name, last_name, email, mobile, mobile_code, city, raw) \
         VALUES ($1, 'Noura', 'Saleh', 'noura' || $1 || '@example.sa', '+96655' || $1, '+966', 'Jeddah', '{}')",
    )
    .bind(salla_id)
    .execute(&tenant.db)
    .await
    .unwrap();
}

fn input(title: &str) -> RecordInput {
    RecordInput {
        title: title.into(),
        ..RecordInput::default()
    }
}

fn status_of(error: CrmRecordsError) -> StatusCode {
    ApiError::from(error).status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_tasks_and_opportunities_round_trip_through_the_tenants_own_workspace() {
    let Setup {
        twenty,
        app,
        records,
        sync,
    } = setup().await;
    let a = ready_tenant(&app, "Records Store A").await;
    let b = ready_tenant(&app, "Records Store B").await;
    let workspace_a = workspace_of(&app, a.id).await;
    let workspace_b = workspace_of(&app, b.id).await;
    assert_ne!(workspace_a, workspace_b);

    // Notes: created, listed newest first by cursor, read, edited.
    let mut notes = vec![];
    for i in 1..=3 {
        let note = records
            .create(
                a.id,
                RecordKind::Note,
                RecordInput {
                    body: Some(format!("**Call** number {i}")),
                    ..input(&format!("Note {i}"))
                },
            )
            .await
            .unwrap();
        assert_eq!(note.kind, RecordKind::Note);
        assert_eq!(
            note.body.as_deref(),
            Some(format!("**Call** number {i}").as_str())
        );
        notes.push(note);
    }
    let stored = twenty.lock().records(&workspace_a, "notes");
    assert_eq!(stored.len(), 3, "in A's workspace");
    assert!(
        stored[0]["bodyV2"]["blocknote"].is_string(),
        "sent as bodyV2.markdown, converted by Twenty: {}",
        stored[0]
    );
    let first = records.list(a.id, RecordKind::Note, None, 2).await.unwrap();
    let titles: Vec<&str> = first.records.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, ["Note 3", "Note 2"], "newest first");
    assert_eq!(first.total_count, Some(3));
    let cursor = first.next_cursor.clone().expect("a second page");
    let second = records
        .list(a.id, RecordKind::Note, Some(cursor), 2)
        .await
        .unwrap();
    let titles: Vec<&str> = second.records.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, ["Note 1"]);
    assert_eq!(second.next_cursor, None);
    let read = records
        .get(a.id, RecordKind::Note, notes[0].id)
        .await
        .unwrap();
    assert_eq!(read, notes[0]);
    let edited = records
        .update(a.id, RecordKind::Note, notes[0].id, input("Note 1, edited"))
        .await
        .unwrap();
    assert_eq!(edited.title, "Note 1, edited");
    assert_eq!(edited.body, None, "an edit without a body clears it");
    assert!(edited.updated_at > notes[0].updated_at);
    assert_eq!(
        records
            .get(a.id, RecordKind::Note, notes[0].id)
            .await
            .unwrap(),
        edited
    );

    // Tasks: status and due date.
    let due = time::OffsetDateTime::parse(
        "2026-03-01T09:30:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let task = records
        .create(
            a.id,
            RecordKind::Task,
            RecordInput {
                status: Some(TaskStatus::Todo),
                due_at: Some(due),
                body: Some("Ask about the abandoned cart".into()),
                ..input("Follow up")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (task.status, task.due_at),
        (Some(TaskStatus::Todo), Some(due))
    );
    let stored = twenty.lock().records(&workspace_a, "tasks");
    assert_eq!(stored[0]["status"], "TODO");
    let done = records
        .update(
            a.id,
            RecordKind::Task,
            task.id,
            RecordInput {
                status: Some(TaskStatus::Done),
                due_at: Some(due),
                ..input("Follow up")
            },
        )
        .await
        .unwrap();
    assert_eq!(done.status, Some(TaskStatus::Done));
    let listed = records
        .list(a.id, RecordKind::Task, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.records, vec![done.clone()]);

    // Opportunities: amount in micros and stage.
    let opportunity = records
        .create(
            a.id,
            RecordKind::Opportunity,
            RecordInput {
                amount: Some(Money::parse("1250.50", "SAR").unwrap()),
                stage: Some("MEETING".into()),
                ..input("Wholesale order")
            },
        )
        .await
        .unwrap();
    assert_eq!(opportunity.amount.as_ref().unwrap().amount(), "1250.5");
    let stored = twenty.lock().records(&workspace_a, "opportunities");
    assert_eq!(stored[0]["name"], "Wholesale order");
    assert_eq!(stored[0]["amount"]["amountMicros"], 1_250_500_000i64);
    assert_eq!(stored[0]["amount"]["currencyCode"], "SAR");
    let moved = records
        .update(
            a.id,
            RecordKind::Opportunity,
            opportunity.id,
            RecordInput {
                amount: opportunity.amount.clone(),
                ..input("Wholesale order")
            },
        )
        .await
        .unwrap();
    assert_eq!(moved.stage.as_deref(), Some("MEETING"), "no stage keeps it");
    let moved = records
        .update(
            a.id,
            RecordKind::Opportunity,
            opportunity.id,
            RecordInput {
                stage: Some("CUSTOMER".into()),
                ..input("Wholesale order")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (moved.stage.as_deref(), moved.amount.as_ref()),
        (Some("CUSTOMER"), None)
    );
    assert_eq!(
        records
            .get(a.id, RecordKind::Opportunity, opportunity.id)
            .await
            .unwrap(),
        moved
    );

    // A customer's notes and tasks, once the sync created their person.
    insert_customer(&a, 7001).await;
    let early = records
        .create(
            a.id,
            RecordKind::Note,
            RecordInput {
                customer: Some(7001),
                ..input("Before the sync")
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(early, CrmRecordsError::Invalid(_)), "{early}");
    assert!(
        records
            .for_customer(a.id, 7001)
            .await
            .unwrap()
            .notes
            .is_empty()
    );
    sync.run_tenant(a.id, &CancellationToken::new())
        .await
        .unwrap();
    let person = record_id(SyncObject::Person, "7001");
    assert!(
        twenty
            .lock()
            .records(&workspace_a, "people")
            .iter()
            .any(|p| p["id"] == person.to_string()),
        "the sync created the person"
    );
    let linked_note = records
        .create(
            a.id,
            RecordKind::Note,
            RecordInput {
                customer: Some(7001),
                body: Some("Prefers WhatsApp".into()),
                ..input("Customer note")
            },
        )
        .await
        .unwrap();
    assert_eq!(linked_note.customer, Some(7001));
    let target = twenty.lock().records(&workspace_a, "noteTargets");
    assert_eq!(target.len(), 1);
    assert_eq!(target[0]["noteId"], linked_note.id.to_string());
    assert_eq!(target[0]["personId"], person.to_string());
    let linked_task = records
        .update(
            a.id,
            RecordKind::Task,
            task.id,
            RecordInput {
                customer: Some(7001),
                status: Some(TaskStatus::InProgress),
                ..input("Follow up")
            },
        )
        .await
        .unwrap();
    assert_eq!(linked_task.customer, Some(7001));
    let linked_deal = records
        .update(
            a.id,
            RecordKind::Opportunity,
            opportunity.id,
            RecordInput {
                customer: Some(7001),
                ..input("Wholesale order")
            },
        )
        .await
        .unwrap();
    assert_eq!(linked_deal.customer, Some(7001));
    assert_eq!(
        twenty.lock().records(&workspace_a, "opportunities")[0]["pointOfContactId"],
        person.to_string()
    );
    let card = records.for_customer(a.id, 7001).await.unwrap();
    assert_eq!(card.notes, vec![linked_note.clone()]);
    assert_eq!(card.tasks.len(), 1);
    assert_eq!(card.tasks[0].id, task.id);
    assert_eq!(card.tasks[0].status, Some(TaskStatus::InProgress));
    let listed = records.list(a.id, RecordKind::Note, None, 1).await.unwrap();
    assert_eq!(listed.records[0].customer, Some(7001), "lists say who");

    // Isolation: B's calls reach B's workspace only; A's ids are not found there.
    for (kind, id) in [
        (RecordKind::Note, notes[1].id),
        (RecordKind::Task, task.id),
        (RecordKind::Opportunity, opportunity.id),
    ] {
        let error = records.get(b.id, kind, id).await.unwrap_err();
        assert!(matches!(error, CrmRecordsError::NotFound), "{error}");
        let error = records
            .update(b.id, kind, id, input("Hijacked"))
            .await
            .unwrap_err();
        assert!(matches!(error, CrmRecordsError::NotFound), "{error}");
        assert!(
            records
                .list(b.id, kind, None, 50)
                .await
                .unwrap()
                .records
                .is_empty(),
            "B sees none of A's {kind}s"
        );
    }
    assert!(
        twenty
            .lock()
            .records(&workspace_a, "notes")
            .iter()
            .all(|n| n["title"] != "Hijacked"),
        "nothing written to A's workspace"
    );
    let b_card = records.for_customer(b.id, 7001).await.unwrap();
    assert!(b_card.notes.is_empty() && b_card.tasks.is_empty());
    let b_note = records
        .create(b.id, RecordKind::Note, input("B's own note"))
        .await
        .unwrap();
    assert_eq!(twenty.lock().records(&workspace_b, "notes").len(), 1);
    let error = records
        .get(a.id, RecordKind::Note, b_note.id)
        .await
        .unwrap_err();
    assert_eq!(status_of(error), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_failures_throttling_and_tenants_without_a_workspace() {
    let Setup {
        twenty,
        app,
        records,
        ..
    } = setup().await;
    let a = ready_tenant(&app, "Records Faults").await;
    let workspace = workspace_of(&app, a.id).await;

    // Refused before any call to Twenty.
    let calls = |fake: &FakeTwentyServer| {
        let f = fake.lock();
        f.calls("GET /rest") + f.calls("POST /rest") + f.calls("PATCH /rest")
    };
    let before = calls(&twenty);
    let invalid = [
        (RecordKind::Note, input("")),
        (RecordKind::Note, input(&"x".repeat(201))),
        (
            RecordKind::Note,
            RecordInput {
                status: Some(TaskStatus::Done),
                ..input("n")
            },
        ),
        (
            RecordKind::Task,
            RecordInput {
                amount: Some(Money::parse("1", "SAR").unwrap()),
                ..input("t")
            },
        ),
        (
            RecordKind::Opportunity,
            RecordInput {
                stage: Some("meeting; DROP".into()),
                ..input("o")
            },
        ),
        (
            RecordKind::Opportunity,
            RecordInput {
                amount: Some(Money {
                    amount_micros: -5,
                    currency_code: "SAR".into(),
                }),
                ..input("o")
            },
        ),
    ];
    for (kind, input) in invalid {
        let error = records.create(a.id, kind, input.clone()).await.unwrap_err();
        assert!(matches!(error, CrmRecordsError::Invalid(_)), "{error}");
        let error = records
            .update(a.id, kind, Uuid::new_v4(), input)
            .await
            .unwrap_err();
        assert_eq!(status_of(error), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let error = records
        .list(a.id, RecordKind::Note, Some("not a cursor!".into()), 10)
        .await
        .unwrap_err();
    assert!(matches!(error, CrmRecordsError::Invalid(_)), "{error}");
    assert_eq!(calls(&twenty), before, "nothing was sent");

    // Twenty's own validation: a stage that is not one of the workspace's options.
    let error = records
        .create(
            a.id,
            RecordKind::Opportunity,
            RecordInput {
                stage: Some("LOST".into()),
                ..input("Deal")
            },
        )
        .await
        .unwrap_err();
    match &error {
        CrmRecordsError::Invalid(message) => {
            assert!(
                message.contains("Invalid value 'LOST' for field \"stage\""),
                "{message}"
            )
        }
        other => panic!("expected Invalid, got {other}"),
    }
    assert_eq!(status_of(error), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        twenty
            .lock()
            .records(&workspace, "opportunities")
            .is_empty()
    );

    // A 5xx is retried, then the list succeeds.
    twenty.lock().fail_next("GET /rest", 1);
    let before = twenty.lock().calls("GET /rest");
    let page = records
        .list(a.id, RecordKind::Note, None, 10)
        .await
        .unwrap();
    assert!(page.records.is_empty());
    assert_eq!(twenty.lock().calls("GET /rest"), before + 2, "retried once");

    // A create whose answer was lost is retried without a second record (our id, upsert).
    twenty.lock().lose_answer_next("POST /rest", 1);
    let note = records
        .create(a.id, RecordKind::Note, input("Exactly once"))
        .await
        .unwrap();
    let stored = twenty.lock().records(&workspace, "notes");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["id"], note.id.to_string());

    // 429 with Retry-After is waited out.
    twenty.lock().throttle_rest(2, 0);
    let task = records
        .create(a.id, RecordKind::Task, input("After throttling"))
        .await
        .unwrap();
    assert_eq!(task.title, "After throttling");
    assert_eq!(twenty.lock().records(&workspace, "tasks").len(), 1);

    // Failing past the retries: Unavailable, 503.
    twenty.lock().fail_next("GET /rest", 10);
    let error = records
        .get(a.id, RecordKind::Note, note.id)
        .await
        .unwrap_err();
    assert!(matches!(error, CrmRecordsError::Unavailable(_)), "{error}");
    assert_eq!(status_of(error), StatusCode::SERVICE_UNAVAILABLE);
    twenty.lock().fail_next("GET /rest", 0);

    // Tenants without a ready workspace: none at all, or waiting for a Twenty instance with room.
    let error = records
        .list(TenantId::new(), RecordKind::Note, None, 10)
        .await
        .unwrap_err();
    assert!(matches!(error, CrmRecordsError::NotProvisioned), "{error}");
    twenty.lock().max_workspaces = Some(1);
    let waiting = ready_tenant(&app, "Records Waiting").await;
    for kind in RecordKind::ALL {
        let error = records.list(waiting.id, *kind, None, 10).await.unwrap_err();
        assert!(matches!(error, CrmRecordsError::NotProvisioned), "{error}");
    }
    let error = records
        .create(waiting.id, RecordKind::Note, input("n"))
        .await
        .unwrap_err();
    assert_eq!(status_of(error), StatusCode::CONFLICT);
    let error = records.for_customer(waiting.id, 1).await.unwrap_err();
    assert!(matches!(error, CrmRecordsError::NotProvisioned), "{error}");
    let body: Value =
        serde_json::to_value(records.get(a.id, RecordKind::Note, note.id).await.unwrap()).unwrap();
    assert_eq!(body["kind"], "note");
    assert_eq!(body["title"], "Exactly once");
}
