//! Test harness: a fresh database per test (cloned from a migrated template), Redis isolated by key prefix,
//! and the real application booted in-process on port 0.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wosool::config::Config;
use wosool::{Application, Role, StartupError};

mod tenancy;

pub use tenancy::*;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// How long a test waits for asynchronous work (a job, a replica's cache) before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The server started by scripts/test (a superuser connection to its `postgres` database).
pub fn admin_database_url() -> String {
    std::env::var("WOSOOL_TEST_DATABASE_URL")
        .expect("WOSOOL_TEST_DATABASE_URL is not set: run the tests with scripts/test")
}

pub fn redis_url() -> String {
    std::env::var("WOSOOL_TEST_REDIS_URL")
        .expect("WOSOOL_TEST_REDIS_URL is not set: run the tests with scripts/test")
}

/// URL of `database` on the test server.
pub fn database_url(database: &str) -> String {
    let mut url = url::Url::parse(&admin_database_url()).expect("valid test database URL");
    url.set_path(database);
    url.to_string()
}

/// A new, fully migrated, empty global database for one test.
pub async fn fresh_database() -> String {
    let template = ensure_template().await;
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin_database_url())
        .await
        .expect("connect to test server");
    // Clones of one template must not overlap with the template's own creation; the lock orders them.
    conn.execute("SELECT pg_advisory_lock(727001)")
        .await
        .expect("lock");
    let created = conn
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {template}"
        )))
        .await;
    conn.execute("SELECT pg_advisory_unlock(727001)")
        .await
        .expect("unlock");
    created.expect("create test database");
    name
}

/// The template database: created and migrated once per test server (shared across test processes), named
/// after the migrations' checksums so a changed migration gets a new template.
async fn ensure_template() -> String {
    let mut hash = 0u64;
    for migration in wosool::db::GLOBAL_MIGRATOR.iter() {
        for byte in migration.checksum.iter() {
            hash = hash.wrapping_mul(31).wrapping_add(*byte as u64);
        }
    }
    let template = format!("wosool_test_template_{:012x}", hash & 0xffff_ffff_ffff);
    let mut conn = PgConnection::connect(&admin_database_url())
        .await
        .expect("connect to test server");
    conn.execute("SELECT pg_advisory_lock(727001)")
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&template)
            .fetch_one(&mut conn)
            .await
            .expect("look up template");
    if !exists {
        let building = format!("{template}_building");
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {building}"
        )))
        .await
        .expect("drop");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .await
            .expect("create template");
        let pool = PgPool::connect(&database_url(&building))
            .await
            .expect("connect template");
        wosool::db::migrate(&pool).await.expect("migrate template");
        pool.close().await;
        conn.execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {template}"
        )))
        .await
        .expect("publish template");
    }
    conn.execute("SELECT pg_advisory_unlock(727001)")
        .await
        .expect("unlock");
    template
}

/// The environment a test app is configured with, as `WOSOOL_*` variables (what an operator would set).
pub fn test_env(database: &str) -> Vec<(String, String)> {
    [
        ("WOSOOL_DB__URL", database_url(database)),
        ("WOSOOL_DB__MAX_CONNECTIONS", "10".into()),
        ("WOSOOL_DB__MIN_CONNECTIONS", "0".into()),
        ("WOSOOL_DB__STARTUP_WAIT_SECS", "5".into()),
        ("WOSOOL_SERVER__LISTEN", "127.0.0.1:0".into()),
        ("WOSOOL_SERVER__SHUTDOWN_TIMEOUT_SECS", "10".into()),
        ("WOSOOL_REDIS__URL", redis_url()),
        (
            "WOSOOL_REDIS__KEY_PREFIX",
            format!("test-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("WOSOOL_ADMIN__API_KEYS", format!("[\"{ADMIN_KEY}\"]")),
        // Most tests register through the public route; tests of the other modes set their own.
        ("WOSOOL_TENANCY__SELF_SERVICE", "open".into()),
        ("WOSOOL_JOBS__POLL_INTERVAL_MS", "50".into()),
        ("WOSOOL_LOG__LEVEL", "warn".into()),
        (
            "WOSOOL_TENANCY__PG_DUMP_PATH",
            std::env::var("WOSOOL_TEST_PG_DUMP").unwrap_or_else(|_| "pg_dump".into()),
        ),
        (
            "WOSOOL_TENANCY__BACKUP_DIR",
            std::env::temp_dir()
                .join(format!("wosool-test-backups-{database}"))
                .display()
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(lenient_rate_limits())
    .collect()
}

/// Every test talks from 127.0.0.1 and polls hard: production limits would throttle tests about something
/// else. Tests of the limits (`rate_limits.rs`) set their own on top.
fn lenient_rate_limits() -> impl Iterator<Item = (String, String)> {
    let rules = [
        "PLANS__DEFAULT",
        "PLANS__FREE",
        "PLANS__STARTER",
        "PLANS__GROWTH",
        "PLANS__ENTERPRISE",
        "REGISTRATION",
        "REGISTRATION_GLOBAL",
        "PROVISIONING_STATUS",
        "SESSION_MINTING",
    ];
    rules.into_iter().flat_map(|rule| {
        [("REQUESTS_PER_MINUTE", "1000000"), ("BURST", "100000")].map(|(field, value)| {
            (
                format!("WOSOOL_RATE_LIMITS__{rule}__{field}"),
                value.to_owned(),
            )
        })
    })
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The app's global database, for arranging and asserting.
    pub db: PgPool,
    pub database: String,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), StartupError>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    /// Sends `request` (built from this app's client), asserts the answer's status is `expected` and returns
    /// its JSON body (`Null` when empty). The failure message carries the body, so a wrong status says why.
    pub async fn call(
        &self,
        request: reqwest::RequestBuilder,
        expected: reqwest::StatusCode,
    ) -> serde_json::Value {
        let (status, body) = answer(request.send().await.expect("request")).await;
        assert_eq!(status, expected, "{body}");
        body
    }

    pub fn admin_get(&self, path: &str) -> reqwest::RequestBuilder {
        self.get(path).header("x-admin-key", ADMIN_KEY)
    }

    pub fn admin_post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("x-admin-key", ADMIN_KEY)
    }

    pub fn admin_delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(self.url(path))
            .header("x-admin-key", ADMIN_KEY)
    }

    /// `POST /api/auth/register-organization` with `body`; returns status and JSON.
    pub async fn register(
        &self,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self
            .client
            .post(self.url("/api/auth/register-organization"))
            .json(&body)
            .send()
            .await
            .expect("register request");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// Registers an organization and waits (the app must run a worker) until it is ready; returns the
    /// registration answer (`tenant_id`, `slug`, `provisioning_id`, …).
    pub async fn register_ready(&self, name: &str) -> serde_json::Value {
        let (status, body) = self
            .register(
                serde_json::json!({ "organization_name": name, "admin_email": "owner@example.sa" }),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        let status_url = body["status_url"].as_str().expect("status_url").to_owned();
        // A deadline, not a measure: provisioning takes ~100 ms, but a loaded 2-core machine can stall it.
        eventually("tenant ready", Duration::from_secs(60), || async {
            let progress: serde_json::Value =
                self.get(&status_url).send().await.ok()?.json().await.ok()?;
            assert_ne!(progress["status"], "failed", "{progress}");
            (progress["status"] == "ready").then_some(())
        })
        .await;
        body
    }

    /// Creates an `admin`-scoped API key for a tenant through the admin API; returns the plain key.
    pub async fn api_key(&self, tenant_id: &str) -> String {
        self.scoped_api_key(tenant_id, "admin").await
    }

    /// Creates an API key of `scope` (`read`, `write`, `admin`) through the admin API; returns the plain key.
    pub async fn scoped_api_key(&self, tenant_id: &str, scope: &str) -> String {
        let body: serde_json::Value = self
            .admin_post(&format!("/api/admin/tenants/{tenant_id}/api-keys"))
            .json(&serde_json::json!({ "name": "test", "scope": scope }))
            .send()
            .await
            .expect("create key")
            .json()
            .await
            .expect("JSON");
        body["key"].as_str().expect("key").to_owned()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text")
    }
}

/// Boots the real application (role `api`) against a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Role::Api, |_| {}).await
}

/// Boots the real application with a role and adjusted environment.
pub async fn spawn_app_with(
    role: Role,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> TestApp {
    let database = fresh_database().await;
    let mut env = test_env(&database);
    adjust(&mut env);
    let config = Config::load_from(None, env).expect("test config is valid");
    wosool::telemetry::init_logging(&config.log);
    let app = Application::build(config, role)
        .await
        .expect("application builds");
    let address = app.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let db = PgPoolOptions::new()
        .max_connections(5)
        .connect(&database_url(&database))
        .await
        .expect("connect test database");
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        database,
        shutdown,
        server,
    }
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A Redis key prefix of its own (what `test_env` gives each app), for apps that must share one.
pub fn new_key_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// Boots another instance of the application on an existing deployment: the global database `database` and
/// the Redis key prefix `key_prefix` of a running app, i.e. a second replica of it.
pub async fn spawn_replica(
    database: &str,
    key_prefix: &str,
    role: Role,
    adjust: impl FnOnce(&mut Vec<(String, String)>),
) -> TestApp {
    let mut env = test_env(database);
    env.push(("WOSOOL_REDIS__KEY_PREFIX".into(), key_prefix.into()));
    adjust(&mut env);
    let config = Config::load_from(None, env).expect("replica config is valid");
    wosool::telemetry::init_logging(&config.log);
    let app = Application::build(config, role)
        .await
        .expect("replica builds");
    let address = app.local_addr().expect("bound address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let db = PgPoolOptions::new()
        .max_connections(5)
        .connect(&database_url(database))
        .await
        .expect("connect test database");
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        database: database.to_owned(),
        shutdown,
        server,
    }
}

/// The configuration an app on `database` runs with, adjusted (later entries override earlier ones).
pub fn test_config(database: &str, adjust: impl FnOnce(&mut Vec<(String, String)>)) -> Config {
    let mut env = test_env(database);
    adjust(&mut env);
    Config::load_from(None, env).expect("test config is valid")
}

/// The tenancy services (directory, pools, provisioner, admin) of the deployment `config` describes, wired
/// as the app wires them; with Redis when `redis.url` is set. Installs the metrics recorder first, so that
/// what these services record can be read with [`render_metrics`].
pub async fn tenancy_stack(config: &Config) -> wosool::TenancyStack {
    wosool::telemetry::metrics_handle();
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(config.db.url.expose())
        .await
        .expect("connect global database");
    let redis = wosool::redis::Redis::connect(&config.redis)
        .await
        .expect("connect Redis");
    wosool::TenancyStack::connect(config, pool, redis).expect("tenancy stack builds")
}

/// What this process's metrics recorder holds, in Prometheus text (every in-process app shares it).
pub fn render_metrics() -> String {
    wosool::telemetry::metrics_handle().render()
}

/// The sum of the samples of metric `name` carrying all of `labels` in Prometheus text, or `None` when there
/// is no such sample.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let matches = labels.iter().all(|(k, v)| {
            series_labels
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        });
        if let (true, Ok(value)) = (matches, value.parse::<f64>()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// A `redis-server` of one test's own (so that stopping it disturbs no other test), killed when dropped.
pub struct OwnRedis {
    pub port: u16,
    child: tokio::process::Child,
}

impl OwnRedis {
    /// Starts `redis-server` on `port` without persistence and waits until it accepts connections.
    pub async fn start_on(port: u16) -> Self {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (scripts/test uses it)");
        eventually(
            "own redis-server accepting connections",
            Duration::from_secs(10),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
        Self { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits until it is gone.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill redis-server");
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers, like a hung Redis.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("redis-server running").to_string();
        let sent = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }
}
