//! Which namespaces may use which gMSA: the platform team's say, read from annotations that app
//! teams usually cannot write. Pure: the operator passes in the annotations it has cached.
//!
//! - An existing GMSACredentialSpec may be used by the apps of the namespaces named in its
//!   annotation [`ALLOWED_NAMESPACES`].
//! - A generated one (`spec.gmsa.credentialSpec`) may name an identity only if the app's Namespace
//!   lists it in its annotation [`GMSA_ACCOUNTS`] as `DOMAIN\account`, the domain by its DNS or
//!   NetBIOS name (an entry without a domain, as earlier versions took them, still allows the
//!   account in any domain, with a warning), and may carry portable CCG plugin settings
//!   (`hostAccount`) only if a line of the Namespace's [`GMSA_CCG_PLUGINS`] names them.
//!
//! [`ALLOWED_NAMESPACES`] and [`GMSA_ACCOUNTS`] are comma-separated lists; whitespace around an
//! entry is ignored, empty entries are dropped, and `*` allows every namespace or identity.
//! Namespace names compare exactly (they are lowercase DNS labels); domain and account names
//! compare case-insensitively, as Active Directory does, and accounts with or without the
//! trailing `$` of a sAMAccountName.

use std::collections::BTreeMap;

use crate::api::CredentialSpec;

/// On a GMSACredentialSpec: the namespaces whose apps may use it.
pub const ALLOWED_NAMESPACES: &str = "winapp.dev/allowed-namespaces";
/// On a Namespace: the gMSA identities (`DOMAIN\account`) its apps may generate a credspec for.
pub const GMSA_ACCOUNTS: &str = "winapp.dev/gmsa-accounts";
/// On a Namespace: the portable CCG plugin settings its apps' generated credspecs may carry, one
/// `{PLUGIN-GUID} INPUT` a line (INPUT may end with `*` to match a prefix; a line `*` allows any).
pub const GMSA_CCG_PLUGINS: &str = "winapp.dev/gmsa-ccg-plugins";

/// Longest annotation value quoted in a message (the status message stays readable).
const QUOTE_MAX: usize = 200;

/// The platform's answer for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Allowed by an entry that is looser than it should be (an account without its domain):
    /// the message says how to pin it.
    AllowedWithWarning(String),
    /// Not allowed: the message names the annotation, the object it belongs on, and the value to
    /// add.
    NotAllowed(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed | Decision::AllowedWithWarning(_))
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

/// One entry of [`GMSA_ACCOUNTS`]: `DOMAIN\account`, `DOMAIN\*`, a bare `account` (no domain:
/// the form of earlier versions), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEntry {
    /// None: any domain.
    pub domain: Option<String>,
    /// None: any account (`*`).
    pub account: Option<String>,
}

impl AccountEntry {
    /// Reads an entry (already trimmed and non-empty).
    pub fn parse(entry: &str) -> AccountEntry {
        let any = |s: &str| (s != "*").then(|| s.to_owned());
        match entry.rsplit_once('\\') {
            Some((domain, account)) => AccountEntry { domain: any(domain.trim()), account: any(account.trim()) },
            None => AccountEntry { domain: None, account: any(entry) },
        }
    }

    /// Whether the entry allows `account` of the domain named `dns_name` / `net_bios_name`.
    fn allows(&self, account: &str, dns_name: &str, net_bios_name: &str) -> bool {
        let account_ok = self.account.as_deref().is_none_or(|a| normalize_account(a) == normalize_account(account));
        let domain_ok = self
            .domain
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case(dns_name) || d.eq_ignore_ascii_case(net_bios_name));
        account_ok && domain_ok
    }

    /// An entry that names an account but no domain (`*` alone is a deliberate choice).
    fn lacks_domain(&self) -> bool {
        self.domain.is_none() && self.account.is_some()
    }
}

/// May the apps of `namespace`, whose annotations are `annotations`, generate the credspec
/// `spec`: its identity (account and domain) by [`GMSA_ACCOUNTS`], and its portable CCG plugin
/// settings, if any, by [`GMSA_CCG_PLUGINS`]?
pub fn generated_credspec(spec: &CredentialSpec, namespace: &str, annotations: &BTreeMap<String, String>) -> Decision {
    let d = &spec.domain;
    let identity = format!("{}\\{}", d.net_bios_name, spec.account);
    let value = annotations.get(GMSA_ACCOUNTS).map(String::as_str);
    let matching: Vec<AccountEntry> = value
        .into_iter()
        .flat_map(entries)
        .map(AccountEntry::parse)
        .filter(|e| e.allows(&spec.account, &d.dns_name, &d.net_bios_name))
        .collect();
    if matching.is_empty() {
        let now = match value {
            None => "it has no such annotation".to_owned(),
            Some(v) => format!("it is now \"{}\"", quote(v)),
        };
        return Decision::NotAllowed(format!(
            "the gMSA identity {identity} (spec.gmsa.credentialSpec: account {}, domain {} / {}) is not allowed in namespace {namespace}: the platform team must add {identity} (or {}\\{}) to the annotation {GMSA_ACCOUNTS} on the Namespace {namespace} (comma-separated DOMAIN\\account entries, case-insensitive; {now})",
            spec.account, d.dns_name, d.net_bios_name, d.dns_name, spec.account
        ));
    }
    if let Some(h) = &spec.host_account {
        let lines = annotations.get(GMSA_CCG_PLUGINS).map(String::as_str);
        if !plugin_allowed(lines, &h.plugin_guid, &h.plugin_input) {
            let now = match lines {
                None => "it has no such annotation".to_owned(),
                Some(v) => format!("it is now \"{}\"", quote(v)),
            };
            return Decision::NotAllowed(format!(
                "the portable CCG plugin settings of spec.gmsa.credentialSpec.hostAccount (plugin {}, input \"{}\") are not allowed in namespace {namespace}: they decide whose credentials fetch the gMSA's password; the platform team must add the line \"{} {}\" to the annotation {GMSA_CCG_PLUGINS} on the Namespace {namespace} (one PLUGIN-GUID INPUT a line, INPUT may end with *; {now})",
                h.plugin_guid,
                quote(&h.plugin_input),
                h.plugin_guid,
                quote(&h.plugin_input)
            ));
        }
    }
    if matching.iter().all(AccountEntry::lacks_domain) {
        return Decision::AllowedWithWarning(format!(
            "the entry {} of {GMSA_ACCOUNTS} on the Namespace {namespace} names no domain, so it allows that account of any domain; the platform team should write {identity} instead",
            spec.account
        ));
    }
    Decision::Allowed
}

/// Whether the lines of [`GMSA_CCG_PLUGINS`] (None: no annotation) allow a plugin `guid` with
/// `input`. GUIDs compare case-insensitively, with or without braces.
pub fn plugin_allowed(lines: Option<&str>, guid: &str, input: &str) -> bool {
    let bare = |g: &str| g.trim().trim_start_matches('{').trim_end_matches('}').to_ascii_lowercase();
    lines.into_iter().flat_map(str::lines).map(str::trim).filter(|l| !l.is_empty()).any(|line| {
        if line == "*" {
            return true;
        }
        let (g, wanted) = match line.split_once(char::is_whitespace) {
            Some((g, rest)) => (g, rest.trim()),
            None => (line, ""),
        };
        let input_ok = match wanted.strip_suffix('*') {
            Some(prefix) => input.starts_with(prefix),
            None => input == wanted,
        };
        bare(g) == bare(guid) && input_ok
    })
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
