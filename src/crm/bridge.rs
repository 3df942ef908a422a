//! Glue between the Twenty client (`crm::twenty`) and the data-model applier (`crm::model`): the applier speaks
//! a small `MetadataApi` trait so it can be tested against any implementation; this is the real one, plus the
//! provisioning hook that applies the model to every new workspace and the connector the rollout uses.

use std::sync::Arc;

use serde_json::Value;
use sqlx::PgPool;

use super::model::{
    self, Manifest, MetadataApi, MetadataConnector, MetadataError, RemoteField, RemoteObject,
};
use super::twenty::{TwentyClient, TwentyError, TwentyInstances, WorkspaceReadyHook};
use super::workspace::WorkspaceCredentials;
use crate::provisioning::integrations::{BoxFuture, StepError};
use crate::tenancy::Tenant;

/// The data-model operations over one workspace's `POST /metadata`.
pub struct TwentyMetadata(super::twenty::metadata::MetadataApi);

impl TwentyMetadata {
    pub fn new(client: TwentyClient, api_key: &str) -> Self {
        Self(super::twenty::metadata::MetadataApi::new(client, api_key))
    }
}

fn metadata_error(error: TwentyError) -> MetadataError {
    match error {
        TwentyError::AlreadyExists { message, .. } => MetadataError::AlreadyExists(message),
        TwentyError::RateLimited { retry_after, .. } => MetadataError::RateLimited(retry_after),
        other => MetadataError::Other(other.to_string()),
    }
}

impl MetadataApi for TwentyMetadata {
    fn objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<RemoteObject>, MetadataError>> {
        Box::pin(async move {
            let objects = self.0.objects().await.map_err(metadata_error)?;
            Ok(objects
                .into_iter()
                .map(|object| RemoteObject {
                    id: object.id,
                    name_singular: object.name_singular,
                    name_plural: object.name_plural,
                    fields: object
                        .fields
                        .into_iter()
                        .map(|field| RemoteField {
                            id: field.id,
                            name: field.name,
                            field_type: field.field_type,
                            options: field.options,
                        })
                        .collect(),
                })
                .collect())
        })
    }

    fn create_object<'a>(
        &'a self,
        object: &'a Value,
    ) -> BoxFuture<'a, Result<String, MetadataError>> {
        Box::pin(async move {
            self.0
                .create_object(object)
                .await
                .map(|created| created.id)
                .map_err(metadata_error)
        })
    }

    fn create_field<'a>(&'a self, field: &'a Value) -> BoxFuture<'a, Result<(), MetadataError>> {
        Box::pin(async move {
            self.0
                .create_field(field)
                .await
                .map(drop)
                .map_err(metadata_error)
        })
    }

    fn update_field<'a>(
        &'a self,
        id: &'a str,
        update: &'a Value,
    ) -> BoxFuture<'a, Result<(), MetadataError>> {
        Box::pin(async move {
            self.0
                .update_field(id, update)
                .await
                .map(drop)
                .map_err(metadata_error)
        })
    }
}

/// Connects the rollout (`wosool crm apply-model`) to each workspace, on the instance it lives on.
pub struct TwentyConnector(pub TwentyInstances);

impl MetadataConnector for TwentyConnector {
    fn connect(
        &self,
        credentials: &WorkspaceCredentials,
    ) -> Result<Box<dyn MetadataApi>, MetadataError> {
        let instance = self.0.get(&credentials.instance).ok_or_else(|| {
            MetadataError::Other(format!(
                "Twenty instance {:?} is not configured",
                credentials.instance
            ))
        })?;
        Ok(Box::new(TwentyMetadata::new(
            instance.client.clone(),
            &credentials.api_key,
        )))
    }
}

/// Applies the data model to a workspace as the last part of its provisioning.
pub struct ApplyModelHook {
    pub db: PgPool,
    pub manifest: Arc<Manifest>,
}

impl WorkspaceReadyHook for ApplyModelHook {
    fn workspace_ready<'a>(
        &'a self,
        tenant: &'a Tenant,
        client: &'a TwentyClient,
        api_key: &'a str,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let api = TwentyMetadata::new(client.clone(), api_key);
            let report = model::apply_to_workspace(&self.db, tenant.id, &api, &self.manifest)
                .await
                .map_err(StepError::new)?;
            tracing::info!(tenant_id = %tenant.id, created = report.created(), version = self.manifest.version(), "CRM data model applied");
            Ok(())
        })
    }
}
