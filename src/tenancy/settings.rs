//! Validation of the settings a tenant is registered with (also used to validate their configured defaults).

/// A refused setting. The message names the value and what was expected, or (email) completes the field's
/// name, as the registration API and the configuration check show it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSetting {
    #[error("{0:?} is not a locale like \"ar-SA\"")]
    Locale(String),
    #[error("{0:?} is not a currency code like \"SAR\"")]
    Currency(String),
    #[error("{0:?} is not a time zone like \"Asia/Riyadh\"")]
    Timezone(String),
    #[error("is not an email address")]
    Email,
}

/// `ll-CC` such as `ar-SA` or `en-US` (BCP 47 language and region).
pub fn check_locale(value: &str) -> Result<(), InvalidSetting> {
    let mut parts = value.split('-');
    let ok = matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(lang), Some(region), None)
            if lang.len() == 2 && lang.bytes().all(|b| b.is_ascii_lowercase())
                && region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase())
    );
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting::Locale(value.to_owned()))
    }
}

/// An ISO 4217 code: three uppercase letters.
pub fn check_currency(value: &str) -> Result<(), InvalidSetting> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(InvalidSetting::Currency(value.to_owned()))
    }
}

/// An IANA zone name such as `Asia/Riyadh` or `UTC`.
pub fn check_timezone(value: &str) -> Result<(), InvalidSetting> {
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 32
            && p.starts_with(|c: char| c.is_ascii_uppercase())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
    };
    let ok = value == "UTC" || {
        let parts: Vec<&str> = value.split('/').collect();
        (2..=3).contains(&parts.len()) && parts.iter().all(|p| valid_part(p))
    };
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting::Timezone(value.to_owned()))
    }
}

pub fn is_valid_plan(plan: &str) -> bool {
    (1..=32).contains(&plan.len())
        && plan
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A pragmatic email check: one `@`, something on both sides, a dot in the domain, no spaces, at most 254.
pub fn check_email(value: &str) -> Result<(), InvalidSetting> {
    let ok = value.len() <= 254
        && !value.contains(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting::Email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation() {
        assert!(check_locale("ar-SA").is_ok());
        assert!(check_locale("arabic").is_err());
        assert!(check_currency("SAR").is_ok());
        assert!(check_currency("sar").is_err());
        assert!(check_timezone("Asia/Riyadh").is_ok());
        assert!(check_timezone("America/Argentina/Buenos_Aires").is_ok());
        assert!(check_timezone("Asia/Riyadh; DROP").is_err());
        assert!(check_email("owner@example.sa").is_ok());
        assert!(check_email("owner@@example").is_err());
    }
}
