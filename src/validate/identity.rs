//! `spec.serviceAccountName` and `spec.gmsa`: who the pods run as.

use super::{GmsaSettings, ServiceAccountChoice, ValidationError, is_dns1123_subdomain};
use crate::api::Gmsa;
use crate::build::meta;

/// The pods' ServiceAccount: an existing one by a valid name, or one named after the app.
pub fn service_account(given: Option<&String>, name: &str, errors: &mut Vec<ValidationError>) -> ServiceAccountChoice {
    match given {
        Some(sa) if is_dns1123_subdomain(sa) => ServiceAccountChoice::Existing(sa.clone()),
        Some(sa) => {
            errors.push(ValidationError::InvalidServiceAccountName(sa.clone()));
            ServiceAccountChoice::Existing(sa.clone())
        }
        None => ServiceAccountChoice::Managed(name.to_owned()),
    }
}

/// The credspec: exactly one of an existing one by name and a generated one; not with hostProcess.
pub fn gmsa(
    g: &Gmsa,
    host_process: bool,
    namespace: &str,
    name: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<GmsaSettings> {
    if host_process {
        errors.push(ValidationError::GmsaWithHostProcess);
    }
    match (&g.credential_spec_name, &g.credential_spec) {
        (Some(existing), None) => Some(GmsaSettings { credential_spec_name: existing.clone(), generated: None }),
        (None, Some(generated)) => Some(GmsaSettings {
            credential_spec_name: meta::generated_credspec_name(namespace, name),
            generated: Some(generated.clone()),
        }),
        _ => {
            errors.push(ValidationError::GmsaOneOf);
            None
        }
    }
}
