//! Offline `render`: multi-document YAML in, every child of every `WindowsApp` out, in apply order.

use thiserror::Error;

use crate::api::{GROUP, VERSION, WindowsApp};
use crate::build::{self, BuildError};
use crate::policy::Policy;
use crate::validate::{self, ValidationErrors};

/// What `render` cannot know without a cluster, and so assumes (shown by `render --help`).
pub const ASSUMPTIONS: &str = "\
Without a cluster, render assumes:
  - placement: the pods tolerate the Windows pool taints of kubeadm and EKS (os=windows),
    OpenShift (os=Windows) and GKE (node.kubernetes.io/os=windows), unless
    spec.windows.toleration or spec.windows.runtimeClassName says otherwise; which nodes match,
    and what a RuntimeClass adds at admission, only the operator judges (WindowsNodesAvailable);
  - config files from Secrets: the operator also puts the Secrets' resourceVersions into the pod
    template annotation winapp.dev/config-secrets-version, which render leaves out;
  - gMSA: that the platform team allows the app's credspec in its namespace (annotations
    winapp.dev/allowed-namespaces on the GMSACredentialSpec, winapp.dev/gmsa-accounts on the
    Namespace); where it does not, the operator leaves out the gMSA children and the workload;
  - replicas: with spec.replicas unset the operator keeps the running count of an existing
    Deployment; render prints 1;
  - the owner reference and winapp.dev/owner-uid carry the app's UID, which only exists on the
    cluster: render leaves them out.";

/// Why an input could not be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error("the input is not valid YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    #[error("document {index}: not a valid WindowsApp: {source}")]
    Decode { index: usize, source: serde_json::Error },
    #[error("WindowsApp {namespace}/{name} is invalid:\n  - {}", .errors.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - "))]
    Invalid { namespace: String, name: String, errors: ValidationErrors },
    #[error("WindowsApp {namespace}/{name}: {source}")]
    Build { namespace: String, name: String, source: BuildError },
    #[error("could not write YAML: {0}")]
    Serialize(#[from] serde_saphyr::SerializeError),
    #[error("the input holds no WindowsApp (apiVersion {GROUP}/{VERSION}, kind WindowsApp)")]
    NoWindowsApp,
}

/// The result of a render: the YAML stream and the documents that were passed over.
#[derive(Debug)]
pub struct Rendered {
    pub yaml: String,
    /// `kind/name` of input documents that are not WindowsApps (left out of the output).
    pub skipped: Vec<String>,
}

/// Renders every `WindowsApp` in a multi-document YAML stream. Objects without a namespace get
/// `default_namespace`, as `kubectl apply` would give them. Every error is reported, not just
/// the first app's.
pub fn render(input: &str, default_namespace: &str) -> Result<Rendered, Vec<RenderError>> {
    render_with(input, default_namespace, &Policy::default())
}

/// [`render`], with pod template overrides checked against `policy` (as the operator does).
pub fn render_with(input: &str, default_namespace: &str, policy: &Policy) -> Result<Rendered, Vec<RenderError>> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(input).map_err(|e| vec![RenderError::Yaml(e)])?;
    let mut out = String::new();
    let mut skipped = Vec::new();
    let mut errors = Vec::new();
    let mut apps = 0;
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or("<no kind>");
        let api_version = doc.get("apiVersion").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "WindowsApp" || api_version != format!("{GROUP}/{VERSION}") {
            let name = doc.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("<no name>");
            skipped.push(format!("{kind}/{name}"));
            continue;
        }
        apps += 1;
        match render_one(doc, index, default_namespace, policy) {
            Ok(yaml) => out.push_str(&yaml),
            Err(e) => errors.push(e),
        }
    }
    if apps == 0 {
        errors.push(RenderError::NoWindowsApp);
    }
    if errors.is_empty() { Ok(Rendered { yaml: out, skipped }) } else { Err(errors) }
}

fn render_one(
    doc: serde_json::Value,
    index: usize,
    default_namespace: &str,
    policy: &Policy,
) -> Result<String, RenderError> {
    let app: WindowsApp = serde_json::from_value(doc).map_err(|source| RenderError::Decode { index, source })?;
    let namespace = app.metadata.namespace.clone().unwrap_or_else(|| default_namespace.to_owned());
    let name = app.metadata.name.clone().unwrap_or_default();
    let valid = validate::validate_with(&app, Some(default_namespace), policy)
        .map_err(|errors| RenderError::Invalid { namespace: namespace.clone(), name: name.clone(), errors })?;
    let children = build::build(&valid).map_err(|source| RenderError::Build {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    })?;
    let objects = children.to_ordered_json().map_err(|source| RenderError::Build { namespace, name, source })?;
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&o)?);
    }
    Ok(out)
}
