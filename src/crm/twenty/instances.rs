//! The configured Twenty instances (`[[crm.instances]]`, or the one `crm.base_url` stands for), each with
//! its client, what its `/metadata` offers (introspected once per process) and its version.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::capabilities::Capabilities;
use super::client::{CallOptions, TwentyClient, TwentyError};
use crate::config::{CrmConfig, Secret};
use crate::outbound::ClientError;

/// One Twenty instance.
pub struct TwentyInstance {
    pub key: String,
    pub client: TwentyClient,
    /// Twenty's own database, for the onboarding SQL fallback (§3.2); `None` when not configured.
    pub onboarding_db: Option<Secret>,
    /// `https://{subdomain}.…`: the URL of a workspace, when it differs from Twenty's own answer.
    workspace_url_pattern: String,
    /// What the server offers, once learnt from the server itself.
    capabilities: RwLock<Option<Arc<Capabilities>>>,
    /// Set once the server refused anonymous introspection (production Twenty): not asked again.
    anonymous_introspection_refused: AtomicBool,
}

impl std::fmt::Debug for TwentyInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwentyInstance")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TwentyInstance {
    /// What the server offers: as learnt from the server (kept for the process), else introspected without
    /// a token; where the server refuses that (production Twenty does, to callers without a workspace), the
    /// pinned version's capabilities, provisional until [`TwentyInstance::learn_capabilities`] runs with a
    /// workspace token.
    pub async fn capabilities(&self) -> Result<Arc<Capabilities>, TwentyError> {
        if let Some(known) = self.known() {
            return Ok(known);
        }
        if !self.anonymous_introspection_refused.load(Ordering::Relaxed) {
            match Capabilities::introspect(&self.client, None).await {
                Ok(capabilities) => return Ok(self.remember(capabilities)),
                Err(error) if error.is_introspection_disabled() => {
                    tracing::info!(instance = %self.key, "Twenty refuses anonymous introspection (production); assuming the pinned version until a workspace token is at hand");
                    self.anonymous_introspection_refused
                        .store(true, Ordering::Relaxed);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(Arc::new(Capabilities::pinned()))
    }

    /// Introspects with `token` (a workspace access token or API key) unless the capabilities are known.
    pub async fn learn_capabilities(&self, token: &str) -> Result<Arc<Capabilities>, TwentyError> {
        if let Some(known) = self.known() {
            return Ok(known);
        }
        let capabilities = Capabilities::introspect(&self.client, Some(token)).await?;
        Ok(self.remember(capabilities))
    }

    fn known(&self) -> Option<Arc<Capabilities>> {
        self.capabilities
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn remember(&self, capabilities: Capabilities) -> Arc<Capabilities> {
        let capabilities = Arc::new(capabilities);
        *self
            .capabilities
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(capabilities.clone());
        capabilities
    }

    /// Twenty's `appVersion` from its public `GET /client-config` (`None` when it does not say).
    pub async fn version(&self) -> Result<Option<String>, TwentyError> {
        let config = self
            .client
            .get_public("/client-config", CallOptions::IDEMPOTENT)
            .await?;
        Ok(config
            .get("appVersion")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned))
    }

    /// The URL of a workspace whose URL Twenty gave as `subdomain_url`: Twenty's own, or the configured
    /// pattern with the workspace's subdomain (the first label of Twenty's host).
    pub fn workspace_url(&self, subdomain_url: &str) -> String {
        if self.workspace_url_pattern.is_empty() {
            return subdomain_url.to_owned();
        }
        let subdomain = url::Url::parse(subdomain_url)
            .ok()
            .and_then(|url| {
                url.host_str()
                    .map(|h| h.split('.').next().unwrap_or(h).to_owned())
            })
            .unwrap_or_default();
        self.workspace_url_pattern
            .replace("{subdomain}", &subdomain)
    }
}

/// Every configured instance, by key. Cheap to clone.
#[derive(Clone, Default)]
pub struct TwentyInstances {
    by_key: Arc<BTreeMap<String, Arc<TwentyInstance>>>,
}

impl std::fmt::Debug for TwentyInstances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_key.keys()).finish()
    }
}

impl TwentyInstances {
    pub fn from_config(config: &CrmConfig) -> Result<Self, ClientError> {
        let mut by_key = BTreeMap::new();
        for instance in config.instances() {
            let client = TwentyClient::new(&instance.base_url, config)?;
            let onboarding_db =
                (!instance.database_url.is_empty()).then(|| instance.database_url.clone());
            by_key.insert(
                instance.key.clone(),
                Arc::new(TwentyInstance {
                    key: instance.key,
                    client,
                    onboarding_db,
                    workspace_url_pattern: instance.workspace_url_pattern,
                    capabilities: RwLock::default(),
                    anonymous_introspection_refused: AtomicBool::new(false),
                }),
            );
        }
        Ok(Self {
            by_key: Arc::new(by_key),
        })
    }

    pub fn get(&self, key: &str) -> Option<&Arc<TwentyInstance>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<TwentyInstance>> {
        self.by_key.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
