//! The bound of every list (`maxItems`) and map (`maxProperties`) in the WindowsApp spec.
//!
//! Why bound them: the API server estimates the cost of each CEL rule from the largest list it
//! may run over, and refuses a CRD whose estimate is over budget; checks of list-map keys and of
//! rules over entries grow with the size of a list (render's are quadratic); and an unbounded
//! list lets one object of 3 MiB make the API server, render and the operator do work no real app
//! needs. Each bound is far above what a real Windows app uses, so no valid app meets one.
//!
//! [`ALL`] lists them by their path in the CRD's schema: `render --help` prints it, the README's
//! API table states each, and a test fails when a list or map of the spec has no bound or a
//! bound other than the one listed here.

use schemars::Schema;
use serde_json::{Map, Value};

use super::reference::{IMAGE_MAX_LENGTH, IMAGE_NAME_MAX_LENGTH, IMAGE_TAG_MAX_LENGTH, SECRET_NAME_MAX_LENGTH};

/// `spec.ports`: an IIS site listens on one or two, a WCF or remoting service on a few more; 64
/// also fits a legacy app with one port per tenant.
pub const PORTS: usize = 64;
/// `spec.service.ports`: one per container port at most, as a rule.
pub const SERVICE_PORTS: usize = PORTS;
/// `spec.env`: ASP.NET apps carry their appSettings overrides here, often a few dozen.
pub const ENV: usize = 256;
/// `spec.envFrom`: whole Secrets and ConfigMaps, a handful.
pub const ENV_FROM: usize = 32;
/// `spec.command`: an entrypoint such as `["powershell", "-Command"]`.
pub const COMMAND: usize = 64;
/// `spec.args`: arguments of a Windows service host or a script (Windows caps a command line at
/// 32,767 characters anyway).
pub const ARGS: usize = 256;
/// `spec.imagePullSecrets`: one per registry.
pub const IMAGE_PULL_SECRETS: usize = 16;
/// `spec.volumes`: each is a PersistentVolume or a claim of its own.
pub const VOLUMES: usize = 16;
/// `spec.config.files`: together under the ConfigMap limit of 1 MiB.
pub const CONFIG_FILES: usize = 32;
/// `spec.logging.eventLog` and `spec.logging.files`: a few channels, a few log directories.
pub const LOG_SOURCES: usize = 16;
/// `spec.volumes[].smb.mountOptions`: SMB mounts take a few (`dir_mode`, `file_mode`, `vers`).
pub const MOUNT_OPTIONS: usize = 32;
/// `spec.windows.tolerations`: taints of the node pools an app may run on.
pub const TOLERATIONS: usize = 32;
/// `spec.windows.nodeSelector`: a few node labels.
pub const NODE_SELECTOR: usize = 32;
/// `spec.networkPolicy.from`: sources of traffic, each a selector.
pub const NETWORK_SOURCES: usize = 16;
/// `spec.volumes[].claim.accessModes`: there are four modes.
pub const ACCESS_MODES: usize = 4;
/// `spec.service.annotations`: cloud load balancer settings (AWS documents about 50 keys in all).
pub const SERVICE_ANNOTATIONS: usize = 128;
/// `spec.podTemplate.metadata.labels`.
pub const POD_LABELS: usize = 64;
/// `spec.podTemplate.metadata.annotations`: scrape, mesh and agent settings.
pub const POD_ANNOTATIONS: usize = 128;
/// `matchLabels` of a label selector (`spec.networkPolicy.from[]`).
pub const SELECTOR_LABELS: usize = 32;
/// `matchExpressions` of a label selector.
pub const SELECTOR_EXPRESSIONS: usize = 16;
/// `values` of one `matchExpressions` entry (`In`/`NotIn` lists of namespaces or apps).
pub const SELECTOR_VALUES: usize = 64;
/// `exec.command` of a probe.
pub const PROBE_COMMAND: usize = COMMAND;
/// `httpGet.httpHeaders` of a probe.
pub const PROBE_HEADERS: usize = 32;
/// `spec.resources.claims` (dynamic resource allocation).
pub const RESOURCE_CLAIMS: usize = 16;
/// `spec.resources.limits` and `requests`: cpu, memory, ephemeral-storage and a few extended
/// resources (for example `microsoft.com/directx`).
pub const RESOURCE_NAMES: usize = 16;

/// Every list and map of the spec and its bound, by path in the CRD's schema (`[]`: a list's
/// entries). Shown by `render --help`; a test holds the CRD to it.
pub const ALL: &[(&str, usize)] = &[
    ("spec.imagePullSecrets", IMAGE_PULL_SECRETS),
    ("spec.command", COMMAND),
    ("spec.args", ARGS),
    ("spec.env", ENV),
    ("spec.envFrom", ENV_FROM),
    ("spec.resources.claims", RESOURCE_CLAIMS),
    ("spec.resources.limits", RESOURCE_NAMES),
    ("spec.resources.requests", RESOURCE_NAMES),
    ("spec.ports", PORTS),
    ("spec.probes.liveness.exec.command", PROBE_COMMAND),
    ("spec.probes.liveness.httpGet.httpHeaders", PROBE_HEADERS),
    ("spec.probes.readiness.exec.command", PROBE_COMMAND),
    ("spec.probes.readiness.httpGet.httpHeaders", PROBE_HEADERS),
    ("spec.probes.startup.exec.command", PROBE_COMMAND),
    ("spec.probes.startup.httpGet.httpHeaders", PROBE_HEADERS),
    ("spec.shutdown.preStop.command", COMMAND),
    ("spec.windows.nodeSelector", NODE_SELECTOR),
    ("spec.windows.tolerations", TOLERATIONS),
    ("spec.service.ports", SERVICE_PORTS),
    ("spec.service.annotations", SERVICE_ANNOTATIONS),
    ("spec.config.files", CONFIG_FILES),
    ("spec.volumes", VOLUMES),
    ("spec.volumes[].smb.mountOptions", MOUNT_OPTIONS),
    ("spec.volumes[].claim.accessModes", ACCESS_MODES),
    ("spec.logging.eventLog", LOG_SOURCES),
    ("spec.logging.files", LOG_SOURCES),
    ("spec.networkPolicy.from", NETWORK_SOURCES),
    ("spec.networkPolicy.from[].namespaceSelector.matchLabels", SELECTOR_LABELS),
    ("spec.networkPolicy.from[].namespaceSelector.matchExpressions", SELECTOR_EXPRESSIONS),
    ("spec.networkPolicy.from[].namespaceSelector.matchExpressions[].values", SELECTOR_VALUES),
    ("spec.networkPolicy.from[].podSelector.matchLabels", SELECTOR_LABELS),
    ("spec.networkPolicy.from[].podSelector.matchExpressions", SELECTOR_EXPRESSIONS),
    ("spec.networkPolicy.from[].podSelector.matchExpressions[].values", SELECTOR_VALUES),
    ("spec.podTemplate.metadata.labels", POD_LABELS),
    ("spec.podTemplate.metadata.annotations", POD_ANNOTATIONS),
];

/// The bounds as `render --help` shows them: one line per group of fields.
pub fn help() -> String {
    let mut out = String::from(
        "Limits of a WindowsApp: the most entries each list or map may hold (the CRD's bounds; the API\n\
         server, render and the operator refuse more, and no real app comes near them):\n",
    );
    let mut line = String::from("  ");
    for (i, (path, max)) in ALL.iter().enumerate() {
        let item = format!("{path} {max}{}", if i + 1 < ALL.len() { "," } else { "." });
        if line.len() + item.len() > 98 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = String::from("  ");
        }
        line.push_str(&item);
        line.push(' ');
    }
    out.push_str(line.trim_end());
    out.push_str(&format!(
        "\nAnd of strings: spec.image at most {IMAGE_MAX_LENGTH} characters (a name of at most {IMAGE_NAME_MAX_LENGTH}, a tag\n\
         of at most {IMAGE_TAG_MAX_LENGTH}); the name of a Secret at most {SECRET_NAME_MAX_LENGTH}."
    ));
    out
}

/// Sets `key` to `max` on the node at `path` below `schema` (property names; `[]` for a list's
/// entries), looking through `anyOf` (an optional field). A path that is not there changes
/// nothing: the test over [`ALL`] finds the list left unbounded.
fn bound(schema: &mut Schema, path: &[&str], key: &str, max: usize) {
    if let Some(o) = schema.as_object_mut().and_then(|o| node(o, path)) {
        o.insert(key.to_owned(), Value::from(max));
    }
}

/// The object at `path` below `o` (property names; `[]` for a list's entries), looking through
/// `anyOf` (an optional field).
pub(super) fn node<'a>(o: &'a mut Map<String, Value>, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let Some((step, rest)) = path.split_first() else { return Some(o) };
    let here = if *step == "[]" {
        o.contains_key("items")
    } else {
        o.get("properties").is_some_and(|p| p.get(*step).is_some())
    };
    if !here {
        let alternatives = o.get_mut("anyOf")?.as_array_mut()?;
        return alternatives.iter_mut().filter_map(Value::as_object_mut).find_map(|a| node(a, path));
    }
    let next = if *step == "[]" { o.get_mut("items")? } else { o.get_mut("properties")?.get_mut(*step)? };
    node(next.as_object_mut()?, rest)
}

/// Bounds of a core `LabelSelector`.
pub fn label_selector(schema: &mut Schema) {
    bound(schema, &["matchLabels"], "maxProperties", SELECTOR_LABELS);
    bound(schema, &["matchExpressions"], "maxItems", SELECTOR_EXPRESSIONS);
    bound(schema, &["matchExpressions", "[]", "values"], "maxItems", SELECTOR_VALUES);
}

/// Bounds of a core `Probe`.
pub fn probe(schema: &mut Schema) {
    bound(schema, &["exec", "command"], "maxItems", PROBE_COMMAND);
    bound(schema, &["httpGet", "httpHeaders"], "maxItems", PROBE_HEADERS);
}

/// Bounds of a core `ResourceRequirements`.
pub fn resources(schema: &mut Schema) {
    bound(schema, &["claims"], "maxItems", RESOURCE_CLAIMS);
    bound(schema, &["limits"], "maxProperties", RESOURCE_NAMES);
    bound(schema, &["requests"], "maxProperties", RESOURCE_NAMES);
}

/// `maxProperties` of a map field (schemars' `length` bounds strings and lists only).
pub fn max_properties<const N: usize>(schema: &mut Schema) {
    bound(schema, &[], "maxProperties", N);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WindowsApp;
    use kube::CustomResourceExt;

    /// Every list and map below `path`, with its bound (None: unbounded).
    fn collections(schema: &Value, path: &str, out: &mut Vec<(String, Option<u64>)>) {
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            out.push((path.to_owned(), schema.get("maxItems").and_then(Value::as_u64)));
        }
        if schema.get("additionalProperties").is_some_and(Value::is_object) {
            out.push((path.to_owned(), schema.get("maxProperties").and_then(Value::as_u64)));
        }
        if let Some(items) = schema.get("items") {
            collections(items, &format!("{path}[]"), out);
        }
        for (name, sub) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            collections(sub, &format!("{path}.{name}"), out);
        }
    }

    #[test]
    fn every_list_and_map_of_the_spec_has_the_listed_bound() {
        let crd = serde_json::to_value(WindowsApp::crd()).expect("the CRD as JSON");
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut found = Vec::new();
        collections(spec, "spec", &mut found);
        assert!(found.len() >= 30, "the walk found only {found:?}");
        let mut wrong = Vec::new();
        for (path, max) in &found {
            let listed = ALL.iter().find(|(p, _)| p == path).map(|(_, m)| *m as u64);
            if listed.is_none() || listed != *max {
                wrong.push(format!("{path}: the CRD says {max:?}, bounds::ALL says {listed:?}"));
            }
        }
        for (path, _) in ALL {
            if !found.iter().any(|(p, _)| p == path) {
                wrong.push(format!("{path}: in bounds::ALL, not a list or map of the CRD"));
            }
        }
        assert!(wrong.is_empty(), "bounds that disagree:\n{}", wrong.join("\n"));
    }

    #[test]
    fn the_help_names_every_bound() {
        let help = help();
        for (path, max) in ALL {
            assert!(help.contains(&format!("{path} {max}")), "{path} is missing from:\n{help}");
        }
        assert!(help.lines().all(|l| l.len() <= 100), "{help}");
    }
}
