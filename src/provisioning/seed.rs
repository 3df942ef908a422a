//! What a first-time setup wizard would have asked, answered up front. Every statement is an upsert that
//! leaves existing rows alone, so the seed can run again after a crash without duplicating anything.

use sqlx::PgPool;

use crate::tenancy::Tenant;

/// System roles and their permissions.
const ROLES: &[(&str, &str, &str, &[&str])] = &[
    (
        "owner",
        "Owner",
        "Full control, including billing and deleting the organization.",
        &[
            "tenant.manage",
            "billing.manage",
            "settings.manage",
            "members.manage",
            "api_keys.manage",
            "crm.read",
            "crm.write",
            "commerce.read",
        ],
    ),
    (
        "admin",
        "Admin",
        "Manages settings, members and API keys.",
        &[
            "settings.manage",
            "members.manage",
            "api_keys.manage",
            "crm.read",
            "crm.write",
            "commerce.read",
        ],
    ),
    (
        "member",
        "Member",
        "Works with customers, deals and orders.",
        &["crm.read", "crm.write", "commerce.read"],
    ),
    (
        "viewer",
        "Viewer",
        "Read-only access.",
        &["crm.read", "commerce.read"],
    ),
];

/// The default sales pipeline: (key, name, probability, won, lost).
const SALES_STAGES: &[(&str, &str, i32, bool, bool)] = &[
    ("new", "New", 10, false, false),
    ("qualified", "Qualified", 25, false, false),
    ("proposal", "Proposal", 50, false, false),
    ("negotiation", "Negotiation", 75, false, false),
    ("won", "Won", 100, true, false),
    ("lost", "Lost", 0, false, true),
];

const SYNC_RESOURCES: &[&str] = &[
    "customers",
    "products",
    "orders",
    "abandoned_carts",
    "order_details",
];

pub async fn seed(pool: &PgPool, tenant: &Tenant) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO settings (id, organization_name, locale, currency, timezone, onboarding_completed_at) \
         VALUES (true, $1, $2, $3, $4, now()) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&tenant.display_name)
    .bind(&tenant.locale)
    .bind(&tenant.currency)
    .bind(&tenant.timezone)
    .execute(&mut *tx)
    .await?;
    for (key, name, description, permissions) in ROLES {
        sqlx::query(
            "INSERT INTO roles (key, name, description, is_system) VALUES ($1, $2, $3, true) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(name)
        .bind(description)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO role_permissions (role_key, permission) SELECT $1, unnest($2::text[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(permissions)
        .execute(&mut *tx)
        .await?;
    }
    let pipeline: uuid::Uuid = sqlx::query_scalar(
        "WITH inserted AS (INSERT INTO pipelines (key, name, is_default) VALUES ('sales', 'Sales', true) \
         ON CONFLICT (key) DO NOTHING RETURNING id) \
         SELECT id FROM inserted UNION ALL SELECT id FROM pipelines WHERE key = 'sales' LIMIT 1",
    )
    .fetch_one(&mut *tx)
    .await?;
    for (position, (key, name, probability, won, lost)) in SALES_STAGES.iter().enumerate() {
        sqlx::query(
            "INSERT INTO pipeline_stages (pipeline_id, key, name, position, probability, is_won, is_lost) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (pipeline_id, key) DO NOTHING",
        )
        .bind(pipeline)
        .bind(key)
        .bind(name)
        .bind(position as i32)
        .bind(probability)
        .bind(won)
        .bind(lost)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO members (email, role_key, status) VALUES ($1, 'owner', 'active') \
         ON CONFLICT ((lower(email))) DO NOTHING",
    )
    .bind(&tenant.owner_email)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sync_state (resource) SELECT unnest($1::text[]) ON CONFLICT (resource) DO NOTHING",
    )
    .bind(SYNC_RESOURCES)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO audit_log (actor, action, details) \
         SELECT 'system', 'tenant.seeded', '{}'::jsonb \
         WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE action = 'tenant.seeded')",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
