//! Setup shared by the benchmarks that boot the application: a fresh database, a config, a served app and a
//! ready tenant. Each benchmark uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::net::SocketAddr;

use sqlx::{Executor, PgPool};
use tokio_util::sync::CancellationToken;
use wosool::config::Config;
use wosool::provisioning::{Registered, RegistrationRequest};
use wosool::{Application, Role, TenancyStack};

/// Drops and recreates the database `name` on the server of `admin_url`; returns its URL.
pub async fn fresh_database(admin_url: &str, name: &str) -> String {
    let admin = PgPool::connect(admin_url).await.expect("connect");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .expect("drop");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create");
    let mut url = url::Url::parse(admin_url).expect("url");
    url.set_path(name);
    url.to_string()
}

/// A config on `database_url`, listening on a free port, quiet, adjusted by `extra`.
pub fn config(database_url: &str, extra: &[(&str, String)]) -> Config {
    let mut env = vec![
        ("WOSOOL_DB__URL".to_owned(), database_url.to_owned()),
        ("WOSOOL_SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("WOSOOL_LOG__LEVEL".to_owned(), "warn".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    Config::load_from(None, env).expect("config")
}

/// Builds and runs the application in this process; cancel the token to stop it.
pub async fn serve(config: Config, role: Role) -> (SocketAddr, CancellationToken) {
    let app = Application::build(config, role).await.expect("app builds");
    let address = app.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    (address, stop)
}

/// Migrates the database of `config`, provisions a ready tenant named `name` (through the real pipeline,
/// without a worker) and returns the services with it.
pub async fn ready_tenant(config: &Config, name: &str) -> (PgPool, TenancyStack, Registered) {
    let pool = wosool::db::connect_with_retry(&config.db)
        .await
        .expect("connect");
    wosool::db::migrate(&pool).await.expect("migrate");
    let stack = TenancyStack::connect(config, pool.clone(), None).expect("stack");
    stack
        .provisioner
        .servers()
        .ensure_templates(&pool)
        .await
        .expect("template");
    let valid = RegistrationRequest {
        organization_name: name.into(),
        admin_email: "owner@example.sa".into(),
        ..RegistrationRequest::default()
    }
    .validate(&config.tenancy)
    .expect("valid");
    let registered = stack
        .provisioner
        .register(valid, None, "bench", None)
        .await
        .expect("register");
    stack
        .provisioner
        .execute(registered.run_id, None)
        .await
        .expect("provision");
    (pool, stack, registered)
}

/// Fills a tenant database with a large deterministic store (`benches/common/store.sql`): `orders` orders with
/// two items each, `customers` customers, `products` products and a cart per 20 orders.
pub async fn fill_store(tenant: &PgPool, orders: u32, customers: u32, products: u32) {
    let sql = include_str!("store.sql")
        .replace(":orders", &orders.to_string())
        .replace(":customers", &customers.to_string())
        .replace(":products", &products.to_string());
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(tenant)
        .await
        .expect("fill the store");
}
