//! Schemas shared by every part of the document: the error envelope, and the id newtypes that serialize as
//! a bare string or number (their `ToSchema` lives here, beside the envelope, so the domain modules keep to
//! their domain; string enums get theirs from `crate::string_enum`).

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Every error response: `{"error": {...}}` (rendered by `crate::http::envelope` for every error, ours or
/// the framework's). `provisioning` is beside `error` while the caller's tenant is being set up.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "documents the envelope that crate::http::envelope renders"
)]
pub struct ErrorEnvelope {
    error: ErrorObject,
    /// Progress of the caller's tenant while it is provisioned (status 409 `tenant_provisioning`).
    #[schema(required = false)]
    provisioning: Option<serde_json::Value>,
}

/// What went wrong: a stable `code` for programs, a `message` for people, and the request id to quote.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "documents the envelope that crate::http::envelope renders"
)]
pub struct ErrorObject {
    /// Stable, snake_case: e.g. `validation_failed`, `insufficient_role`, `tenant_not_found`, `rate_limited`.
    #[schema(example = "validation_failed")]
    code: String,
    message: String,
    /// The `X-Request-Id` of the request (also a response header).
    request_id: String,
    /// Per-code details: `fields` (field → problem) for `validation_failed` and `invalid_text`, `limit` and
    /// `retry_after_secs` for `rate_limited`, `checks` for `not_ready`.
    #[schema(required = false)]
    details: Option<serde_json::Value>,
}

/// A schema for a newtype that serializes as its inner value.
fn scalar(kind: Type, format: Option<KnownFormat>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(kind)
        .format(format.map(SchemaFormat::KnownFormat))
        .description(Some(description))
        .into()
}

macro_rules! scalar_schema {
    ($type:ty, $name:literal, $kind:expr, $format:expr, $description:literal) => {
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                scalar($kind, $format, $description)
            }
        }
        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

scalar_schema!(
    crate::tenancy::TenantId,
    "TenantId",
    Type::String,
    Some(KnownFormat::Uuid),
    "A tenant's id (UUIDv7)."
);
scalar_schema!(
    crate::tenancy::MerchantId,
    "MerchantId",
    Type::Integer,
    Some(KnownFormat::Int64),
    "A Salla store's id (Salla's merchant id)."
);
scalar_schema!(
    crate::jobs::JobId,
    "JobId",
    Type::Integer,
    Some(KnownFormat::Int64),
    "A job's id."
);
scalar_schema!(
    crate::tenancy::Slug,
    "Slug",
    Type::String,
    None,
    "A tenant's URL-safe name: lowercase letters, digits and hyphens."
);
scalar_schema!(
    crate::tenancy::DbName,
    "DbName",
    Type::String,
    None,
    "The name of a tenant's database."
);
scalar_schema!(
    crate::dashboard::commerce::money::Money,
    "Money",
    Type::String,
    None,
    "An amount as a decimal string with two decimals, e.g. \"129.50\"."
);
