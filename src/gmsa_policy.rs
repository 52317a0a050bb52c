//! Which namespaces may use which gMSA: the platform team's say, read from annotations that app
//! teams usually cannot write. Pure: the operator passes in the annotations it has cached.
//!
//! - An existing GMSACredentialSpec may be used by the apps of the namespaces named in its
//!   annotation [`ALLOWED_NAMESPACES`].
//! - A generated one (`spec.gmsa.credentialSpec`) may name an account only if the app's Namespace
//!   lists it in its annotation [`GMSA_ACCOUNTS`].
//!
//! Both annotations are comma-separated lists; whitespace around an entry is ignored, empty
//! entries are dropped, and `*` allows every namespace or account. Namespace names compare
//! exactly (they are lowercase DNS labels); account names compare case-insensitively, as Active
//! Directory does, and with or without the trailing `$` of a sAMAccountName.

use std::collections::BTreeMap;

/// On a GMSACredentialSpec: the namespaces whose apps may use it.
pub const ALLOWED_NAMESPACES: &str = "winapp.dev/allowed-namespaces";
/// On a Namespace: the gMSA accounts its apps may generate a credspec for.
pub const GMSA_ACCOUNTS: &str = "winapp.dev/gmsa-accounts";

/// Longest annotation value quoted in a message (the status message stays readable).
const QUOTE_MAX: usize = 200;

/// The platform's answer for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Not allowed: the message names the annotation, the object it belongs on, and the value to
    /// add.
    NotAllowed(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

/// The entries of a comma-separated annotation value: trimmed, empty ones dropped.
pub fn entries(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Whether the value of [`ALLOWED_NAMESPACES`] (None: no annotation) allows `namespace`.
pub fn namespace_allowed(annotation: Option<&str>, namespace: &str) -> bool {
    annotation.is_some_and(|v| entries(v).any(|e| e == "*" || e == namespace))
}

/// Whether the value of [`GMSA_ACCOUNTS`] (None: no annotation) allows `account`.
pub fn account_allowed(annotation: Option<&str>, account: &str) -> bool {
    let wanted = normalize_account(account);
    annotation.is_some_and(|v| entries(v).any(|e| e == "*" || normalize_account(e) == wanted))
}

/// Lowercase, without the trailing `$` of a sAMAccountName.
fn normalize_account(account: &str) -> String {
    let a = account.trim();
    a.strip_suffix('$').unwrap_or(a).to_lowercase()
}

/// May the apps of `namespace` use the existing GMSACredentialSpec `credspec`, whose annotations
/// are `annotations`?
pub fn existing_credspec(credspec: &str, annotations: &BTreeMap<String, String>, namespace: &str) -> Decision {
    let value = annotations.get(ALLOWED_NAMESPACES).map(String::as_str);
    if namespace_allowed(value, namespace) {
        return Decision::Allowed;
    }
    let now = match value {
        None => "it has no such annotation".to_owned(),
        Some(v) => format!("it is now \"{}\"", quote(v)),
    };
    Decision::NotAllowed(format!(
        "GMSACredentialSpec {credspec} does not allow namespace {namespace}: the platform team must add {namespace} to the annotation {ALLOWED_NAMESPACES} on the GMSACredentialSpec {credspec} (comma-separated namespace names, or *; {now}), or the app must name a credspec that allows this namespace"
    ))
}

/// May the apps of `namespace`, whose annotations are `annotations`, generate a credspec for
/// the gMSA `account`?
pub fn generated_credspec(account: &str, namespace: &str, annotations: &BTreeMap<String, String>) -> Decision {
    let value = annotations.get(GMSA_ACCOUNTS).map(String::as_str);
    if account_allowed(value, account) {
        return Decision::Allowed;
    }
    let now = match value {
        None => "it has no such annotation".to_owned(),
        Some(v) => format!("it is now \"{}\"", quote(v)),
    };
    Decision::NotAllowed(format!(
        "the gMSA account {account} (spec.gmsa.credentialSpec.account) is not allowed in namespace {namespace}: the platform team must add {account} to the annotation {GMSA_ACCOUNTS} on the Namespace {namespace} (comma-separated account names, case-insensitive, or *; {now})"
    ))
}

/// `value`, cut to [`QUOTE_MAX`] bytes at a character boundary.
fn quote(value: &str) -> String {
    if value.len() <= QUOTE_MAX {
        return value.to_owned();
    }
    let mut cut = QUOTE_MAX;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &value[..cut])
}
