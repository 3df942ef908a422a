//! Arrangements shared by the tenancy tests: tenant rows and databases, waiting for a run or a status, an app
//! with a known Redis namespace and its hand-driven tenancy stack or worker replica.

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wosool::config::Config;
use wosool::{Application, Role, StartupError, TenancyStack};

use super::{
    TestApp, WAIT, admin_database_url, database_url, eventually, spawn_app_with, test_env,
};

/// Whether a database of that name exists on the test server (0 or 1).
pub async fn database_count(name: &str) -> i64 {
    let pool = PgPool::connect(&admin_database_url())
        .await
        .expect("connect to the test server");
    let count = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&pool)
        .await
        .expect("count databases");
    pool.close().await;
    count
}

/// A pool on a tenant database, for arranging and asserting.
pub async fn tenant_db(db_name: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url(db_name))
        .await
        .expect("connect to the tenant database")
}

/// The registry row of a tenant: `(status, db_name, schema_version)`.
pub async fn tenant_row(app: &TestApp, tenant_id: &str) -> (String, String, i64) {
    sqlx::query_as("SELECT status, db_name, schema_version FROM tenants WHERE id = $1::uuid")
        .bind(tenant_id)
        .fetch_one(&app.db)
        .await
        .expect("tenant row")
}

pub async fn tenant_status(app: &TestApp, tenant_id: &str) -> String {
    tenant_row(app, tenant_id).await.0
}

/// `GET path` with `Authorization: Bearer key`; status and JSON.
pub async fn get_with_key(app: &TestApp, path: &str, key: &str) -> (StatusCode, Value) {
    let response = app
        .get(path)
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

/// Status and JSON of a response.
pub async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"))
    };
    (status, body)
}

/// `path?k=v&…`, encoded.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    format!("{path}?{}", query.finish())
}

/// Polls the public progress endpoint until the run reports `want` and its steps are all recorded (the tenant
/// turns ready inside `finalize`, moments before that step's own record is written); returns that answer.
pub async fn wait_for_run(app: &TestApp, run_id: &str, want: &str) -> Value {
    let path = format!("/api/auth/provisioning-status/{run_id}");
    eventually(&format!("run {run_id} becomes {want}"), WAIT, || async {
        let body: Value = app.get(&path).send().await.ok()?.json().await.ok()?;
        let settled = body["steps"]
            .as_array()?
            .iter()
            .all(|step| step["status"] != "running");
        (body["status"] == want && settled).then_some(body)
    })
    .await
}

/// Every step record of a provisioning run, as operators see them (attempts, detail, error, durations): the
/// public progress endpoint shows names and statuses only.
pub async fn run_steps(app: &TestApp, run_id: &str) -> Value {
    let run: uuid::Uuid = run_id.parse().expect("a run id");
    let records = wosool::provisioning::steps::steps_of(&app.db, run)
        .await
        .expect("read the steps");
    serde_json::to_value(records).expect("steps as JSON")
}

/// Polls the registry until the tenant has `want` status.
pub async fn wait_for_tenant(app: &TestApp, tenant_id: &str, want: &str) {
    eventually(
        &format!("tenant {tenant_id} becomes {want}"),
        WAIT,
        || async { (tenant_status(app, tenant_id).await == want).then_some(()) },
    )
    .await
}

/// An app of the given role plus the environment it was configured with, sharing a Redis namespace the test
/// knows, so that a tenancy stack or a worker replica built from `env` invalidates the app's caches.
pub struct Driven {
    pub app: TestApp,
    pub env: Vec<(String, String)>,
}

pub async fn spawn_driven(role: Role, extra: &[(&str, &str)]) -> Driven {
    let mut settings: Vec<(String, String)> = vec![(
        "WOSOOL_REDIS__KEY_PREFIX".into(),
        format!("test-{}", Uuid::new_v4().simple()),
    )];
    settings.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let for_app = settings.clone();
    let app = spawn_app_with(role, move |env| env.extend(for_app)).await;
    let mut env = test_env(&app.database);
    env.extend(settings);
    Driven { app, env }
}

impl Driven {
    /// A tenancy stack of its own on the app's global database and Redis namespace: drives the pipeline by
    /// hand (`execute` up to a step simulates a crash after it).
    pub async fn stack(&self) -> TenancyStack {
        let config = Config::load_from(None, self.env.clone()).expect("config");
        let redis = wosool::redis::Redis::connect(&config.redis)
            .await
            .expect("redis");
        TenancyStack::connect(&config, self.app.db.clone(), redis).expect("tenancy stack")
    }

    /// A `--role worker` replica on the same database (runs the queued jobs of an API-only app).
    pub async fn worker(&self) -> (CancellationToken, JoinHandle<Result<(), StartupError>>) {
        let config = Config::load_from(None, self.env.clone()).expect("config");
        let worker = Application::build(config, Role::Worker)
            .await
            .expect("worker builds");
        let stop = CancellationToken::new();
        (stop.clone(), tokio::spawn(worker.run(stop)))
    }
}

/// Registers through HTTP and asserts the 202 answer; returns it.
pub async fn register_ok(app: &TestApp, body: Value) -> Value {
    let (status, answer) = app.register(body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}
