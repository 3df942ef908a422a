//! `wosool secrets rotate`: credentials sealed with an old key are re-sealed with the new active key, still
//! open to the same plaintext, a rerun re-seals nothing, and a corrupt row is reported while the rest go on.

use serde_json::Value;
use sqlx::PgPool;
use wosool::config::{Secret, SecretsConfig};
use wosool::secrets::Keyring;
use wosool::tenancy::{MerchantId, TenantId};

use crate::helpers::{database_url, fresh_database};

const OLD: &str = "old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW: &str = "new:HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=";
const GONE: &str = "gone:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn keyring(keys: &[&str]) -> Keyring {
    Keyring::from_config(&SecretsConfig {
        encryption_keys: keys.iter().map(|k| Secret::new(*k)).collect(),
    })
    .unwrap()
}

fn salla(merchant: i64, which: &str) -> String {
    wosool::salla::tokens::context(MerchantId::new(merchant), which)
}

async fn store(db: &PgPool, ring: &Keyring, merchant: i64) {
    let access = ring
        .seal(
            &salla(merchant, "access"),
            format!("access-{merchant}").as_bytes(),
        )
        .unwrap();
    let refresh = ring
        .seal(
            &salla(merchant, "refresh"),
            format!("refresh-{merchant}").as_bytes(),
        )
        .unwrap();
    sqlx::query(
        "INSERT INTO salla_stores (merchant_id, status, key_id, access_token, refresh_token, token_version) \
         VALUES ($1, 'installed', $2, $3, $4, 7)",
    )
    .bind(merchant)
    .bind(&access.key_id)
    .bind(&access.bytes)
    .bind(&refresh.bytes)
    .execute(db)
    .await
    .unwrap();
}

async fn tenant(db: &PgPool) -> TenantId {
    let id = TenantId::new();
    let simple = id.as_uuid().simple().to_string();
    sqlx::query(
        "INSERT INTO tenants (id, slug, display_name, db_server, db_name, owner_email, locale, currency, timezone) \
         VALUES ($1, $2, 'Sealed', 'main', $3, 'o@example.sa', 'ar-SA', 'SAR', 'Asia/Riyadh')",
    )
    .bind(id)
    .bind(format!("sealed-{}", &simple[26..]))
    .bind(format!("t_{simple}"))
    .execute(db)
    .await
    .unwrap();
    id
}

async fn workspace(db: &PgPool, ring: &Keyring, tenant: TenantId, with_key: bool) {
    let password = ring
        .seal(
            &wosool::crm::workspace::password_context(tenant),
            format!("pw-{tenant}").as_bytes(),
        )
        .unwrap();
    let api_key = with_key.then(|| {
        ring.seal(
            &wosool::crm::workspace::api_key_context(tenant),
            format!("key-{tenant}").as_bytes(),
        )
        .unwrap()
        .bytes
    });
    sqlx::query(
        "INSERT INTO crm_workspaces (tenant_id, owner_email, key_id, owner_password, api_key_token) \
         VALUES ($1, 'o@example.sa', $2, $3, $4)",
    )
    .bind(tenant)
    .bind(&password.key_id)
    .bind(&password.bytes)
    .bind(api_key)
    .execute(db)
    .await
    .unwrap();
}

async fn clerk_password(db: &PgPool, ring: &Keyring, tenant: TenantId) {
    let sealed = ring
        .seal(
            &wosool::clerk::identity::password_context(tenant),
            b"clerk-owner-password",
        )
        .unwrap();
    sqlx::query(
        "INSERT INTO clerk_owner_credentials (tenant_id, key_id, password) VALUES ($1, $2, $3)",
    )
    .bind(tenant)
    .bind(&sealed.key_id)
    .bind(&sealed.bytes)
    .execute(db)
    .await
    .unwrap();
}

async fn rotate_cli(database: &str, keys: &[&str], args: &[&str]) -> (Option<i32>, Value, String) {
    let keys = serde_json::to_string(keys).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wosool"))
        .args(["secrets", "rotate", "--json", "--batch-size", "2"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WOSOOL_DB__URL", database_url(database))
        .env("WOSOOL_SECRETS__ENCRYPTION_KEYS", keys)
        .output()
        .await
        .expect("run wosool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.code(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kind<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

/// The `(scanned, already_current, resealed, changed_meanwhile, failed)` of a kind.
fn counts(report: &Value, name: &str) -> (u64, u64, u64, u64, usize) {
    let k = kind(report, name);
    (
        k["scanned"].as_u64().unwrap(),
        k["already_current"].as_u64().unwrap(),
        k["resealed"].as_u64().unwrap(),
        k["changed_meanwhile"].as_u64().unwrap(),
        k["failed"].as_array().unwrap().len(),
    )
}

async fn key_ids(db: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT key_id FROM {table} ORDER BY 1"
    )))
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn secrets_rotate_reseals_everything_with_the_new_key_once_and_reports_what_it_did() {
    let database = fresh_database().await;
    let db = PgPool::connect(&database_url(&database)).await.unwrap();
    let old = keyring(&[OLD]);
    let rotated = keyring(&[NEW, OLD]);
    // Salla: five stores on the old key (one corrupt, one sealed with a key no longer configured), one
    // already on the new key.
    for merchant in [101, 102, 103, 104] {
        store(&db, &old, merchant).await;
    }
    store(&db, &keyring(&[GONE]), 105).await;
    store(&db, &rotated, 106).await;
    sqlx::query(
        "UPDATE salla_stores SET access_token = set_byte(access_token, 20, get_byte(access_token, 20) # 1) \
         WHERE merchant_id = 103",
    )
    .execute(&db)
    .await
    .unwrap();
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    workspace(&db, &old, a, true).await;
    workspace(&db, &old, b, false).await;
    clerk_password(&db, &old, a).await;

    // A dry run opens everything and writes nothing.
    let (code, dry, stderr) = rotate_cli(&database, &[NEW, OLD], &["--dry-run"]).await;
    assert_eq!(code, Some(1), "two rows fail: {stderr}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(counts(&dry, "salla_tokens"), (6, 1, 3, 0, 2), "{dry}");
    assert_eq!(
        key_ids(&db, "salla_stores").await,
        ["gone", "new", "old", "old", "old", "old"],
        "a dry run writes nothing"
    );

    let (code, report, stderr) = rotate_cli(&database, &[NEW, OLD], &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("2 credential row(s)"), "{stderr}");
    assert_eq!(report["active_key"], "new");
    assert_eq!(counts(&report, "salla_tokens"), (6, 1, 3, 0, 2), "{report}");
    assert_eq!(
        counts(&report, "crm_credentials"),
        (2, 0, 2, 0, 0),
        "{report}"
    );
    assert_eq!(
        counts(&report, "clerk_owner_passwords"),
        (1, 0, 1, 0, 0),
        "{report}"
    );
    let failed = kind(&report, "salla_tokens")["failed"].as_array().unwrap();
    let reason = |row: &str| {
        failed
            .iter()
            .find(|f| f["row"] == row)
            .unwrap_or_else(|| panic!("{row} failed: {failed:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(reason("103").contains("does not open"), "{failed:?}");
    assert!(reason("105").contains("not configured"), "{failed:?}");
    // Nothing secret in the report.
    for plain in ["access-101", "refresh-102", "clerk-owner-password", "pw-"] {
        assert!(!report.to_string().contains(plain), "{plain} printed");
    }

    // Everything that opened is on the new key now, opens with the new key alone, to the same plaintext.
    let new_only = keyring(&[NEW]);
    type StoreRow = (i64, String, Vec<u8>, Vec<u8>, i64);
    let rows: Vec<StoreRow> = sqlx::query_as(
        "SELECT merchant_id, key_id, access_token, refresh_token, token_version FROM salla_stores \
         WHERE merchant_id NOT IN (103, 105) ORDER BY merchant_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    for (merchant, key_id, access, refresh, version) in rows {
        assert_eq!(key_id, "new");
        assert_eq!(
            new_only
                .open_string(&salla(merchant, "access"), &key_id, &access)
                .unwrap(),
            format!("access-{merchant}")
        );
        assert_eq!(
            new_only
                .open_string(&salla(merchant, "refresh"), &key_id, &refresh)
                .unwrap(),
            format!("refresh-{merchant}")
        );
        assert_eq!(version, 7, "re-sealing is not a token change");
    }
    for (tenant, with_key) in [(a, true), (b, false)] {
        let (key_id, password, api_key): (String, Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
            "SELECT key_id, owner_password, api_key_token FROM crm_workspaces WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(key_id, "new");
        assert_eq!(
            new_only
                .open_string(
                    &wosool::crm::workspace::password_context(tenant),
                    &key_id,
                    &password
                )
                .unwrap(),
            format!("pw-{tenant}")
        );
        assert_eq!(api_key.is_some(), with_key, "a missing value stays missing");
        if let Some(api_key) = api_key {
            assert_eq!(
                new_only
                    .open_string(
                        &wosool::crm::workspace::api_key_context(tenant),
                        &key_id,
                        &api_key
                    )
                    .unwrap(),
                format!("key-{tenant}")
            );
        }
    }
    let (key_id, password): (String, Vec<u8>) =
        sqlx::query_as("SELECT key_id, password FROM clerk_owner_credentials")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        new_only
            .open_string(
                &wosool::clerk::identity::password_context(a),
                &key_id,
                &password
            )
            .unwrap(),
        "clerk-owner-password"
    );

    // A second run re-seals nothing; the broken rows are still reported.
    let (code, again, _) = rotate_cli(&database, &[NEW, OLD], &[]).await;
    assert_eq!(code, Some(1));
    assert_eq!(counts(&again, "salla_tokens"), (6, 4, 0, 0, 2), "{again}");
    assert_eq!(
        counts(&again, "crm_credentials"),
        (2, 2, 0, 0, 0),
        "{again}"
    );
    assert_eq!(
        counts(&again, "clerk_owner_passwords"),
        (1, 1, 0, 0, 0),
        "{again}"
    );

    // Without the broken rows, a clean run exits 0.
    sqlx::query("DELETE FROM salla_stores WHERE merchant_id IN (103, 105)")
        .execute(&db)
        .await
        .unwrap();
    let (code, clean, stderr) = rotate_cli(&database, &[NEW, OLD], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(counts(&clean, "salla_tokens"), (4, 4, 0, 0, 0), "{clean}");

    // No key at all: nothing can be sealed.
    let (code, _, stderr) = rotate_cli(&database, &[], &[]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no encryption key"), "{stderr}");
}
