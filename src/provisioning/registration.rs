//! Validating a registration request (HTTP `register-organization`, `wosool tenants create`, and later Salla
//! and Clerk) into a `NewTenant`. Every problem is reported per field.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::TenancyConfig;
use crate::tenancy::settings::{self, InvalidSetting, check_email};
use crate::tenancy::{NewTenant, Slug, TenantId};

/// The request body of `POST /api/auth/register-organization` (and `POST /api/admin/tenants`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"organization_name": "Nour Store", "admin_email": "owner@nour.example", "locale": "ar-SA"}))]
pub struct RegistrationRequest {
    /// 1–200 printable characters.
    pub organization_name: String,
    /// Required, except in `clerk` self-service, where the owner's email is their Clerk user's.
    #[serde(default)]
    pub admin_email: String,
    /// One of `tenancy.plans` (admin API only: self-service always gets `tenancy.default_plan`).
    pub plan: Option<String>,
    /// Derived from the name when absent: 3–48 of `[a-z0-9-]`.
    pub slug: Option<String>,
    /// e.g. `ar-SA` (default `tenancy.default_locale`).
    pub locale: Option<String>,
    /// ISO 4217, e.g. `SAR`.
    pub currency: Option<String>,
    /// IANA, e.g. `Asia/Riyadh`.
    pub timezone: Option<String>,
}

/// Field name → what is wrong with it.
pub type FieldErrors = BTreeMap<String, String>;

const MAX_NAME_CHARS: usize = 200;

impl RegistrationRequest {
    /// Checks every field; the tenant server is chosen later (placement).
    pub fn validate(&self, config: &TenancyConfig) -> Result<ValidRegistration, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = self.organization_name.trim();
        let name_chars = name.chars().count();
        if name_chars == 0 {
            errors.insert("organization_name".into(), "is required".into());
        } else if name_chars > MAX_NAME_CHARS {
            errors.insert(
                "organization_name".into(),
                format!("must be at most {MAX_NAME_CHARS} characters (got {name_chars})"),
            );
        } else if name.chars().any(char::is_control) {
            errors.insert(
                "organization_name".into(),
                "may not contain control characters".into(),
            );
        }
        let email = self.admin_email.trim().to_ascii_lowercase();
        if let Err(why) = check_email(&email) {
            errors.insert("admin_email".into(), why.to_string());
        }
        let plan = self
            .plan
            .clone()
            .unwrap_or_else(|| config.default_plan.clone());
        if !config.plans.contains(&plan) {
            errors.insert(
                "plan".into(),
                format!("must be one of {}", config.plans.join(", ")),
            );
        }
        let slug = match &self.slug {
            Some(raw) => match Slug::parse(raw) {
                Ok(slug) => Some(slug),
                Err(why) => {
                    errors.insert("slug".into(), why.to_string());
                    None
                }
            },
            None => None,
        };
        let mut pick = |field: &str,
                        given: &Option<String>,
                        default: &str,
                        check: fn(&str) -> Result<(), InvalidSetting>| {
            let value = given.clone().unwrap_or_else(|| default.to_owned());
            if let Err(why) = check(&value) {
                errors.insert(field.into(), why.to_string());
            }
            value
        };
        let locale = pick(
            "locale",
            &self.locale,
            &config.default_locale,
            settings::check_locale,
        );
        let currency = pick(
            "currency",
            &self.currency,
            &config.default_currency,
            settings::check_currency,
        );
        let timezone = pick(
            "timezone",
            &self.timezone,
            &config.default_timezone,
            settings::check_timezone,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        let id = TenantId::new();
        let slug = slug.unwrap_or_else(|| generated_slug(name, id));
        Ok(ValidRegistration {
            slug_was_given: self.slug.is_some(),
            owner_user_id: None,
            tenant: NewTenant {
                id,
                slug,
                display_name: name.to_owned(),
                plan,
                db_server: String::new(),
                owner_email: email,
                locale,
                currency,
                timezone,
                clerk_org_id: None,
                salla_merchant_id: None,
            },
        })
    }
}

/// A slug from the name when it has enough ASCII, plus a short suffix of the id so two organizations with the
/// same name do not collide; `org-<suffix>` otherwise (e.g. Arabic names).
fn generated_slug(name: &str, id: TenantId) -> Slug {
    let simple = id.as_uuid().simple().to_string();
    // The last hex digits of a UUIDv7 are random (the first ones are the timestamp).
    let suffix = &simple[simple.len() - 6..];
    let base = Slug::from_name(name)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|| "org".into());
    Slug::parse(&format!("{base}-{suffix}"))
        .or_else(|_| Slug::parse(&format!("org-{suffix}")))
        .unwrap_or_else(|_| unreachable!("org-<6 hex> is always a valid slug"))
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct ValidRegistration {
    pub tenant: NewTenant,
    /// A chosen slug that is taken is a 409; a generated one is never taken (it carries random digits).
    pub slug_was_given: bool,
    /// The identity provider's user who registered the organization themselves (`tenancy.self_service =
    /// "clerk"`): recorded with the tenant, and the identity step makes that existing user the owner.
    pub owner_user_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TenancyConfig {
        crate::config::Config::load_from(None, Vec::new())
            .expect("defaults")
            .tenancy
    }

    #[test]
    fn defaults_fill_in_settings_and_a_slug() {
        let request = RegistrationRequest {
            organization_name: "متجر الرياض".into(),
            admin_email: "Owner@Example.SA".into(),
            ..Default::default()
        };
        let valid = request.validate(&config()).expect("valid");
        assert_eq!(valid.tenant.locale, "ar-SA");
        assert_eq!(valid.tenant.currency, "SAR");
        assert_eq!(valid.tenant.timezone, "Asia/Riyadh");
        assert_eq!(valid.tenant.plan, "free");
        assert_eq!(valid.tenant.owner_email, "owner@example.sa");
        assert!(valid.tenant.slug.as_str().starts_with("org-"));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let request = RegistrationRequest {
            organization_name: "x".repeat(201),
            admin_email: "nope".into(),
            plan: Some("platinum".into()),
            slug: Some("Bad Slug".into()),
            locale: Some("arabic".into()),
            currency: Some("riyal".into()),
            timezone: Some("nowhere".into()),
        };
        let errors = request.validate(&config()).unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "admin_email",
                "currency",
                "locale",
                "organization_name",
                "plan",
                "slug",
                "timezone"
            ]
        );
    }
}
