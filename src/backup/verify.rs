//! Verifying a stored set: every successful entry is downloaded again, its SHA-256 compared with the manifest,
//! decrypted when encrypted, and read through `pg_restore --list`.

use serde::Serialize;

use super::{BackupError, Backups};

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub set_id: String,
    pub ok: bool,
    pub entries: Vec<VerifiedEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifiedEntry {
    pub object: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl Backups {
    /// Verifies `set_id`, or the newest set when `None`.
    pub async fn verify(&self, set_id: Option<&str>) -> Result<VerifyReport, BackupError> {
        let set_id = match set_id {
            Some(id) => id.to_owned(),
            None => self
                .target
                .set_ids()
                .await?
                .pop()
                .ok_or_else(|| BackupError::Invalid("no backup set in the target".into()))?,
        };
        let manifest = self.manifest(&set_id).await?;
        let staging = self.staging(&format!("verify-{set_id}"))?;
        let mut entries = Vec::new();
        for entry in manifest.entries.iter().filter(|e| e.status == "succeeded") {
            let file = staging.file("check.dump");
            let result: Result<(), BackupError> = async {
                let stored = self
                    .target
                    .download(&entry.object, &file, Some(&entry.sha256))
                    .await?;
                if stored.size != entry.size_bytes {
                    return Err(BackupError::Invalid(format!(
                        "size mismatch: stored {} bytes, manifest {}",
                        stored.size, entry.size_bytes
                    )));
                }
                self.tools.list(&file).await?;
                Ok(())
            }
            .await;
            let _ = tokio::fs::remove_file(&file).await;
            entries.push(VerifiedEntry {
                object: entry.object.clone(),
                ok: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            });
        }
        Ok(VerifyReport {
            set_id,
            ok: entries.iter().all(|e| e.ok),
            entries,
        })
    }
}
