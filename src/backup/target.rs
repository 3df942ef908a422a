//! Where backup sets are stored: a local directory or S3-compatible object storage, both behind
//! `object_store`. Objects are streamed in both directions (multipart upload, ranged reads), so a dump is never
//! held in memory whole; the SHA-256 of the stored bytes is computed on the way, and our envelope
//! ([`super::envelope`]) is applied on the way when configured.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::envelope::{CHUNK, EnvelopeError, EnvelopeKeys};
use crate::config::{BackupConfig, BackupTarget};

/// Parts of a multipart upload (S3's minimum part is 5 MiB).
const PART: usize = 8 << 20;
/// Parts uploaded at the same time per object.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes per ranged read when downloading.
const READ: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("{what} did not finish within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("backup target: {0}")]
    Config(String),
    #[error("checksum mismatch: {object} is {stored}, its manifest says {expected}")]
    Checksum {
        object: String,
        stored: String,
        expected: String,
    },
}

/// What was stored: size and SHA-256 of the stored bytes, and the key that encrypted them.
#[derive(Debug, Clone)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
    pub key_id: Option<String>,
}

/// A configured target. Cheap to clone.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    keys: EnvelopeKeys,
    timeout: Duration,
    description: String,
    /// The local target's directory (its emptied set directories are removed after a prune).
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Target {
    pub fn from_config(config: &BackupConfig) -> Result<Self, TargetError> {
        let keys = EnvelopeKeys::parse(config.encryption_keys.iter().map(|k| k.expose()))
            .map_err(TargetError::Config)?;
        let timeout = Duration::from_secs(config.dump_timeout_secs);
        match config.target {
            BackupTarget::Local => {
                std::fs::create_dir_all(&config.dir).map_err(|e| {
                    TargetError::Config(format!("cannot create {}: {e}", config.dir.display()))
                })?;
                let store = LocalFileSystem::new_with_prefix(&config.dir)?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: None,
                    keys,
                    timeout,
                    description: format!("local:{}", config.dir.display()),
                    local_root: Some(config.dir.clone()),
                })
            }
            BackupTarget::S3 => {
                let s3 = &config.s3;
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http)
                    .with_client_options(
                        ClientOptions::new()
                            .with_timeout(Duration::from_secs(s3.request_timeout_secs))
                            .with_connect_timeout(Duration::from_secs(10))
                            .with_allow_http(s3.allow_http),
                    );
                if !s3.endpoint.is_empty() {
                    builder = builder.with_endpoint(&s3.endpoint);
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(s3.access_key_id.expose())
                        .with_secret_access_key(s3.secret_access_key.expose());
                }
                if !s3.server_side_encryption.is_empty() {
                    builder = builder.with_config(
                        config_key("aws_server_side_encryption")?,
                        &s3.server_side_encryption,
                    );
                    if !s3.sse_kms_key_id.is_empty() {
                        builder = builder
                            .with_config(config_key("aws_sse_kms_key_id")?, &s3.sse_kms_key_id);
                    }
                }
                let store = builder.build()?;
                let prefix = s3.prefix.trim_matches('/');
                Ok(Self {
                    store: Arc::new(store),
                    prefix: (!prefix.is_empty())
                        .then(|| Path::parse(prefix))
                        .transpose()
                        .map_err(|e| TargetError::Config(format!("backup.s3.prefix: {e}")))?,
                    keys,
                    timeout,
                    description: format!("s3://{}/{}", s3.bucket, prefix),
                    local_root: None,
                })
            }
        }
    }

    /// `local:/dir` or `s3://bucket/prefix`.
    pub fn describe(&self) -> &str {
        &self.description
    }

    pub fn keys(&self) -> &EnvelopeKeys {
        &self.keys
    }

    /// The full path of `relative` (`<set>/…`).
    fn path(&self, relative: &str) -> Result<Path, TargetError> {
        let full = match &self.prefix {
            Some(prefix) => format!("{prefix}/{relative}"),
            None => relative.to_owned(),
        };
        Path::parse(full).map_err(|e| TargetError::Config(e.to_string()))
    }

    async fn bounded<T>(
        &self,
        what: impl Into<String>,
        work: impl Future<Output = Result<T, TargetError>>,
    ) -> Result<T, TargetError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| TargetError::Timeout {
                what: what.into(),
                timeout: self.timeout,
            })?
    }

    /// Uploads the file at `source` as `relative`, encrypted when keys are configured (and `encrypt`).
    pub async fn upload(
        &self,
        source: &FsPath,
        relative: &str,
        encrypt: bool,
    ) -> Result<Stored, TargetError> {
        self.bounded(format!("uploading {relative}"), async {
            let path = self.path(relative)?;
            let mut file = tokio::fs::File::open(source).await?;
            let upload = self.store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            let mut encryptor = if encrypt && self.keys.active().is_some() {
                Some(self.keys.encryptor()?)
            } else {
                None
            };
            let key_id = encryptor.as_ref().map(|e| e.key_id().to_owned());
            let mut emit = |writer: &mut WriteMultipart, bytes: &[u8]| {
                hasher.update(bytes);
                size += bytes.len() as u64;
                writer.write(bytes);
            };
            if let Some(enc) = &encryptor {
                emit(&mut writer, enc.header());
            }
            // One chunk read ahead, so the last chunk is known to be last when it is sealed.
            let mut current = read_chunk(&mut file).await?;
            loop {
                let next = read_chunk(&mut file).await?;
                let last = next.is_empty();
                if let Err(error) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    let _ = writer.abort().await;
                    return Err(error.into());
                }
                match &mut encryptor {
                    Some(enc) => emit(&mut writer, &enc.seal(&current, last)),
                    None => emit(&mut writer, &current),
                }
                if last {
                    break;
                }
                current = next;
            }
            writer.finish().await?;
            Ok(Stored {
                size,
                sha256: hex::encode(hasher.finalize()),
                key_id,
            })
        })
        .await
    }

    /// Downloads `relative` into the file `dest` (decrypted when it is encrypted); returns the size and
    /// SHA-256 of the stored bytes (before decryption). With `expected`, a different SHA-256 is an error
    /// ([`TargetError::Checksum`]), reported before anything the decryption found.
    pub async fn download(
        &self,
        relative: &str,
        dest: &FsPath,
        expected: Option<&str>,
    ) -> Result<Stored, TargetError> {
        self.bounded(format!("downloading {relative}"), async {
            let path = self.path(relative)?;
            let meta = self.store.head(&path).await?;
            let mut out = tokio::fs::File::create(dest).await?;
            let mut hasher = Sha256::new();
            let mut decryptor = None;
            let mut key_id = None;
            let mut broken: Option<EnvelopeError> = None;
            let mut offset = 0u64;
            while offset < meta.size {
                let end = (offset + READ).min(meta.size);
                let bytes = self.store.get_range(&path, offset..end).await?;
                if offset == 0 && super::envelope::is_encrypted(&bytes) {
                    decryptor = Some(self.keys.decryptor());
                    key_id = Some(String::new());
                }
                hasher.update(&bytes);
                match &mut decryptor {
                    // Once the envelope is broken, only the checksum is still computed.
                    Some(_) if broken.is_some() => {}
                    Some(dec) => match dec.push(&bytes) {
                        Ok(plain) => out.write_all(&plain).await?,
                        Err(error) => broken = Some(error),
                    },
                    None => out.write_all(&bytes).await?,
                }
                offset = end;
            }
            let sha256 = hex::encode(hasher.finalize());
            if let Some(expected) = expected
                && expected != sha256
            {
                return Err(TargetError::Checksum {
                    object: relative.to_owned(),
                    stored: sha256,
                    expected: expected.to_owned(),
                });
            }
            if let Some(error) = broken {
                return Err(error.into());
            }
            if let Some(dec) = decryptor {
                dec.finish()?;
            }
            out.flush().await?;
            Ok(Stored {
                size: meta.size,
                sha256,
                key_id,
            })
        })
        .await
    }

    /// Stores a small object (the manifest) in one request.
    pub async fn put_small(&self, relative: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        self.bounded(format!("writing {relative}"), async {
            self.store
                .put(&self.path(relative)?, PutPayload::from(bytes))
                .await?;
            Ok(())
        })
        .await
    }

    /// Reads a small object (the manifest) whole.
    pub async fn get_small(&self, relative: &str) -> Result<Vec<u8>, TargetError> {
        self.bounded(format!("reading {relative}"), async {
            Ok(self
                .store
                .get(&self.path(relative)?)
                .await?
                .bytes()
                .await?
                .to_vec())
        })
        .await
    }

    /// The set ids present (the top-level "directories"), oldest first.
    pub async fn set_ids(&self) -> Result<Vec<String>, TargetError> {
        self.bounded("listing backup sets", async {
            let listed = self.store.list_with_delimiter(self.prefix.as_ref()).await?;
            let mut ids: Vec<String> = listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .filter(|id| super::manifest::is_set_id(id))
                .collect();
            ids.sort();
            Ok(ids)
        })
        .await
    }

    /// Deletes every object of set `id`.
    pub async fn delete_set(&self, id: &str) -> Result<usize, TargetError> {
        self.bounded(format!("deleting set {id}"), async {
            let mut pending = vec![self.path(id)?];
            let mut deleted = 0;
            while let Some(dir) = pending.pop() {
                let listed = self.store.list_with_delimiter(Some(&dir)).await?;
                for object in listed.objects {
                    self.store.delete(&object.location).await?;
                    deleted += 1;
                }
                pending.extend(listed.common_prefixes);
            }
            // Object stores have no directories; a local one keeps them empty, and they would still list.
            if let Some(root) = &self.local_root {
                match tokio::fs::remove_dir_all(root.join(id)).await {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        return Err(error.into());
                    }
                    _ => {}
                }
            }
            Ok(deleted)
        })
        .await
    }

    /// Overwrites `relative` with `bytes` (tests corrupt an object this way).
    pub async fn overwrite(&self, relative: &str, bytes: Vec<u8>) -> Result<(), TargetError> {
        self.put_small(relative, bytes).await
    }
}

fn config_key(name: &str) -> Result<AmazonS3ConfigKey, TargetError> {
    name.parse()
        .map_err(|e: object_store::Error| TargetError::Config(e.to_string()))
}

/// Up to [`CHUNK`] bytes (fewer only at the end of the file).
async fn read_chunk(file: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; CHUNK];
    let mut filled = 0;
    while filled < CHUNK {
        let n = file.read(&mut buffer[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buffer.truncate(filled);
    Ok(buffer)
}
