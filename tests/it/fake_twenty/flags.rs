//! Onboarding flags as rows of Twenty's own database (`core."keyValuePair"`), when a test asks for it: the
//! table, the rows written for new workspaces, and the flags cleared when their row is gone.

use super::{FakeTwentyServer, Shared};

impl FakeTwentyServer {
    /// From now on, onboarding flags of new workspaces are also rows of `core."keyValuePair"` in the database
    /// at `url` (created here, as in Twenty's schema, §3.2 "Storage"), and `onboardingStatus` reads them: a
    /// flag whose row was deleted (the SQL fallback) is cleared.
    pub(crate) async fn store_onboarding_flags_in(&self, url: &str) -> sqlx::PgPool {
        let pool = sqlx::PgPool::connect(url).await.expect("Twenty's database");
        sqlx::raw_sql(
            r#"CREATE SCHEMA IF NOT EXISTS core;
               CREATE TABLE IF NOT EXISTS core."keyValuePair" (
                   id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                   "userId" uuid,
                   "workspaceId" uuid,
                   key text NOT NULL,
                   value jsonb,
                   type text NOT NULL
               );"#,
        )
        .execute(&pool)
        .await
        .expect("keyValuePair table");
        self.lock().database = Some(pool.clone());
        pool
    }
}

/// The `keyValuePair` key of a fake flag.
fn flag_key(flag: &str) -> String {
    format!("ONBOARDING_{flag}_PENDING")
}

/// Writes the flags of workspaces created since the last call to Twenty's database; INVITE_TEAM at workspace
/// level (no user), the others for (owner, workspace), as sign-up does (§3.2).
pub(super) async fn mirror_new_flags(state: &Shared, db: &sqlx::PgPool) {
    let fresh: Vec<(String, String, Vec<&'static str>)> = {
        let mut fake = state.lock().unwrap();
        let fresh: Vec<_> = fake
            .workspaces
            .iter()
            .filter(|ws| !fake.mirrored.contains(&ws.id))
            .map(|ws| {
                (
                    ws.id.clone(),
                    ws.owner.clone(),
                    ws.pending.iter().copied().collect(),
                )
            })
            .collect();
        fake.mirrored
            .extend(fresh.iter().map(|(id, _, _)| id.clone()));
        fresh
    };
    for (workspace, owner, flags) in fresh {
        for flag in flags {
            let user = (flag != "INVITE_TEAM").then(|| owner.clone());
            sqlx::query(
                r#"INSERT INTO core."keyValuePair" ("userId", "workspaceId", key, value, type)
                   VALUES ($1::uuid, $2::uuid, $3, 'true', 'USER_VARIABLE')"#,
            )
            .bind(user)
            .bind(&workspace)
            .bind(flag_key(flag))
            .execute(db)
            .await
            .expect("insert flag");
        }
    }
}

/// Clears the flags whose rows are gone from Twenty's database (merged over the three scopes of §3.2).
pub(super) async fn read_flags(state: &Shared, db: &sqlx::PgPool) {
    let rows: Vec<(Option<String>, Option<String>, String)> = sqlx::query_as(
        r#"SELECT "userId"::text, "workspaceId"::text, key FROM core."keyValuePair"
            WHERE key LIKE 'ONBOARDING\_%' ESCAPE '\'"#,
    )
    .fetch_all(db)
    .await
    .expect("read flags");
    let mut fake = state.lock().unwrap();
    let mirrored = fake.mirrored.clone();
    for ws in fake
        .workspaces
        .iter_mut()
        .filter(|ws| mirrored.contains(&ws.id))
    {
        let present = |flag: &str| {
            rows.iter().any(|(user, workspace, key)| {
                *key == flag_key(flag)
                    && match (user, workspace) {
                        (Some(user), Some(workspace)) => *user == ws.owner && *workspace == ws.id,
                        (Some(user), None) => *user == ws.owner,
                        (None, Some(workspace)) => *workspace == ws.id,
                        (None, None) => false,
                    }
            })
        };
        ws.pending.retain(|flag| present(flag));
    }
}
