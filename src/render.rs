//! Offline `render`: multi-document YAML in, every child of every `WindowsApp` out, in apply order.

use std::fmt;

use thiserror::Error;

use crate::admission::{self, ChildError};
use crate::api::{GROUP, VERSION, WindowsApp};
use crate::build::{self, BuildError};
use crate::policy::Policy;
use crate::schema::{self, FieldPath, SchemaError, Step};
use crate::validate::{self, ValidationError};
use crate::yaml::{self, Document, Pos, YamlError};

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

/// What `render --help` shows after the options: assumptions, limits, how YAML is read.
pub fn help() -> String {
    format!("{ASSUMPTIONS}\n\n{LIMITS}\n\n{}\n\n{READING}", crate::api::bounds::help())
}

/// How render reads YAML (shown by `render --help`).
pub const READING: &str = "\
Scalars are read as kubectl reads them (yes/no/on/off are booleans, 010 is octal, 1.0 is 1); a key
given twice keeps its last value, as with kubectl, with a warning. A WindowsApp given twice (the
same namespace and name in two documents) is warned about too: kubectl applies both, the later
over the earlier, so the earlier has no effect.";

/// The limits on an input stream (shown by `render --help`).
pub const LIMITS: &str = "\
Limits on the input (generous for `kustomize build` of a large app set; YAML bombs are refused
within a second):
  - the whole input: at most 64 MiB, 50,000 documents and 5,000,000 YAML nodes;
  - one document: at most 3 MiB (the API server's own request limit);
  - nesting of mappings and sequences: at most 100 levels;
  - aliases (*name): at most 10,000, expanding to at most 100,000 nodes in all.";

/// Which document an error is about.
#[derive(Debug, Clone, PartialEq)]
pub struct DocRef {
    /// Position among the stream's non-empty documents, from 0.
    pub index: usize,
    /// `namespace/name` of the WindowsApp, when it has a name.
    pub name: Option<String>,
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "document {} (WindowsApp {n})", self.index),
            None => write!(f, "document {}", self.index),
        }
    }
}

/// Why an input could not be rendered. Every error about a document names it, the field, and
/// (see [`RenderError::pos`]) the line and column in the input.
#[derive(Debug, Error)]
pub enum RenderError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{doc}: {message}")]
    Document { doc: DocRef, pos: Pos, message: String },
    #[error("{doc}: {error}")]
    Schema { doc: DocRef, pos: Pos, error: SchemaError },
    #[error("{doc}: not a valid WindowsApp ({source}); fix the field it names")]
    Decode { doc: DocRef, pos: Pos, source: serde_json::Error },
    #[error("{doc}: {error}")]
    Invalid { doc: DocRef, pos: Pos, error: ValidationError },
    #[error("{doc}: {source}")]
    Build { doc: DocRef, pos: Pos, source: BuildError },
    #[error("{doc}: the API server would refuse the {error}{}", .error.origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Child { doc: DocRef, pos: Pos, error: ChildError },
    #[error("could not write YAML: {0}")]
    Serialize(#[from] serde_saphyr::SerializeError),
    #[error("the input holds no WindowsApp (apiVersion {GROUP}/{VERSION}, kind WindowsApp)")]
    NoWindowsApp,
}

impl RenderError {
    /// Line and column in the input of the node the error is about.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            RenderError::Document { pos, .. }
            | RenderError::Schema { pos, .. }
            | RenderError::Decode { pos, .. }
            | RenderError::Invalid { pos, .. }
            | RenderError::Build { pos, .. }
            | RenderError::Child { pos, .. } => Some(*pos),
            RenderError::Yaml(YamlError::Syntax(e) | YamlError::Limit(e, _)) => {
                e.location().map(|l| Pos { line: l.line(), column: l.column() }).filter(|p| p.line > 0)
            }
            _ => None,
        }
    }
}

/// Something render did that the user should know, with where.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    pub pos: Pos,
    pub message: String,
}

/// The result of a render: the YAML stream and the documents that were passed over.
#[derive(Debug)]
pub struct Rendered {
    pub yaml: String,
    /// `kind/name` of input documents that are not WindowsApps (left out of the output).
    pub skipped: Vec<String>,
    /// Keys given twice in a WindowsApp (the last one wins, as with kubectl).
    pub warnings: Vec<Warning>,
    /// Advice on the apps' memory and CPU settings (see [`crate::advice`]), at `spec.resources`:
    /// the operator applies them all the same, and says so in the status.
    pub advice: Vec<Warning>,
}

/// Renders every `WindowsApp` in a multi-document YAML stream. Objects without a namespace get
/// `default_namespace`, as `kubectl apply` would give them. Every error of every document is
/// reported, in input order: schema (as the API server checks the CRD), the operator's own rules,
/// then what the API server would refuse of the children.
pub fn render(input: &str, default_namespace: &str) -> Result<Rendered, Vec<RenderError>> {
    render_with(input, default_namespace, &Options::default())
}

/// What [`render_with`] checks.
#[derive(Debug, Clone)]
pub struct Options {
    /// Check the children for what the API server would refuse (tests turn it off to show that
    /// the API server does refuse them).
    pub check_children: bool,
    /// The pod template policy, as the operator has it.
    pub policy: Policy,
    /// The platform's image warm-up default, as the operator has it.
    pub warm_up: crate::validate::WarmUpDefault,
}

impl Default for Options {
    fn default() -> Self {
        Options { check_children: true, policy: Policy::default(), warm_up: Default::default() }
    }
}

/// [`render`] with [`Options`].
pub fn render_with(input: &str, default_namespace: &str, options: &Options) -> Result<Rendered, Vec<RenderError>> {
    let docs = yaml::parse_stream(input).map_err(|e| vec![RenderError::Yaml(e)])?;
    let mut out = String::new();
    let mut skipped = Vec::new();
    let mut warnings = Vec::new();
    let mut advice = Vec::new();
    let mut errors = Vec::new();
    let mut apps = 0;
    let mut seen = SeenApps::default();
    for doc in docs {
        let spans = &doc.spans;
        let plain = DocRef { index: doc.index, name: None };
        if doc.value.is_null() {
            continue;
        }
        let Some(obj) = doc.value.as_object() else {
            errors.push(RenderError::Document {
                doc: plain,
                pos: spans.pos,
                message:
                    "is not a mapping; every document must be a Kubernetes object (apiVersion, kind, metadata, ...)"
                        .into(),
            });
            continue;
        };
        let kind = obj.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let api_version = obj.get("apiVersion").and_then(|k| k.as_str()).unwrap_or("");
        if kind.is_empty() || api_version.is_empty() {
            let missing = if kind.is_empty() { "kind" } else { "apiVersion" };
            errors.push(RenderError::Document {
                doc: plain,
                pos: spans.pos,
                message: format!(
                    "{missing}: missing, so kubectl would refuse the document; add it (apiVersion: {GROUP}/{VERSION}, kind: WindowsApp for an app)"
                ),
            });
            continue;
        }
        let ours = api_version.split('/').next() == Some(GROUP);
        if kind != "WindowsApp" || api_version != format!("{GROUP}/{VERSION}") {
            if ours {
                let (field, message) = if api_version != format!("{GROUP}/{VERSION}") {
                    ("apiVersion", format!("apiVersion: {api_version} is not served; use {GROUP}/{VERSION}"))
                } else {
                    let hint = schema::closest(kind, ["WindowsApp"])
                        .map(|s| format!("; did you mean {s}?"))
                        .unwrap_or_default();
                    ("kind", format!("kind: {kind} is not a kind of {GROUP}{hint} (the only kind is WindowsApp)"))
                };
                errors.push(RenderError::Document {
                    doc: plain,
                    pos: spans.locate(&[Step::Key(field.into())], false),
                    message,
                });
            } else {
                let name = doc.value.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("<no name>");
                skipped.push(format!("{kind}/{name}"));
            }
            continue;
        }
        apps += 1;
        warnings.extend(seen.note(&doc, default_namespace));
        warnings.extend(duplicates(&doc));
        warnings.extend(ignored_overrides(&doc));
        match render_one(doc, default_namespace, options) {
            Ok((yaml, more)) => {
                out.push_str(&yaml);
                advice.extend(more);
            }
            Err(mut e) => {
                e.sort_by_key(|e| e.pos().map(|p| (p.line, p.column)));
                errors.append(&mut e);
            }
        }
    }
    if apps == 0 && errors.is_empty() {
        errors.push(RenderError::NoWindowsApp);
    }
    if errors.is_empty() { Ok(Rendered { yaml: out, skipped, warnings, advice }) } else { Err(errors) }
}

/// Keys given twice in the document.
fn duplicates(doc: &Document) -> Vec<Warning> {
    doc.spans
        .duplicates()
        .into_iter()
        .map(|(path, pos)| Warning {
            pos,
            message: format!(
                "document {}: {} is given twice; the last value is used, as kubectl does: remove the other",
                doc.index,
                FieldPath(path)
            ),
        })
        .collect()
}

/// The WindowsApps met so far in a stream, by namespace and name, each with its last document and
/// the position of its name there.
#[derive(Default)]
struct SeenApps(std::collections::BTreeMap<(String, String), (usize, Pos)>);

impl SeenApps {
    /// A warning when `doc` is a WindowsApp of the same namespace and name as an earlier document
    /// (the last such): kubectl applies both, the later over the earlier, so the earlier one has
    /// no effect.
    fn note(&mut self, doc: &Document, default_namespace: &str) -> Option<Warning> {
        let name = doc.value.pointer("/metadata/name")?.as_str()?;
        let namespace = match doc.value.pointer("/metadata/namespace") {
            Some(ns) => ns.as_str()?,
            None => default_namespace,
        };
        let pos = doc.spans.locate(&[Step::Key("metadata".into()), Step::Key("name".into())], false);
        let key = (namespace.to_owned(), name.to_owned());
        let (earlier, earlier_pos) = self.0.insert(key, (doc.index, pos))?;
        Some(Warning {
            pos,
            message: format!(
                "document {} (WindowsApp {namespace}/{name}): the same WindowsApp as document {earlier} (line {}); kubectl applies both, this one over that one, so document {earlier} has no effect: remove one, or rename one (metadata.name)",
                doc.index, earlier_pos.line
            ),
        })
    }
}

/// The warnings of [`Rendered::warnings`] for an input that failed to render (WindowsApps given
/// twice, keys given twice in a WindowsApp, pod template fields the operator ignores), so that
/// they are shown with the errors.
pub fn warnings(input: &str, default_namespace: &str) -> Vec<Warning> {
    let Ok(docs) = yaml::parse_stream(input) else { return Vec::new() };
    let mut seen = SeenApps::default();
    docs.iter()
        .filter(|d| d.value.get("kind").and_then(|k| k.as_str()) == Some("WindowsApp"))
        .flat_map(|d| {
            let twice = seen.note(d, default_namespace);
            twice.into_iter().chain(duplicates(d)).chain(ignored_overrides(d)).collect::<Vec<_>>()
        })
        .collect()
}

/// Fields of `spec.podTemplate.spec` that are not fields of a pod spec (at any depth: containers,
/// probes, ...). The API server keeps them (the field preserves unknown fields), but the operator
/// builds a PodSpec from the merged override, which drops them: a typo there would be lost in
/// silence.
fn ignored_overrides(doc: &Document) -> Vec<Warning> {
    let Some(fragment) = doc.value.pointer("/spec/podTemplate/spec").and_then(|v| v.as_object()) else {
        return Vec::new();
    };
    let mut lent = fragment.clone();
    lent.entry("containers").or_insert_with(|| serde_json::json!([]));
    let lent = serde_json::Value::Object(lent);
    let Ok(typed) = serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(lent.clone()) else {
        return Vec::new(); // not a pod spec at all: validate says so
    };
    let Ok(kept) = serde_json::to_value(typed) else { return Vec::new() };
    let base = FieldPath(vec![Step::Key("spec".into()), Step::Key("podTemplate".into()), Step::Key("spec".into())]);
    let mut dropped = Vec::new();
    dropped_fields(&lent, &kept, &base, &mut dropped);
    let pod_spec_schema = serde_json::to_value(schemars::schema_for!(k8s_openapi::api::core::v1::PodSpec)).ok();
    dropped
        .into_iter()
        .map(|(path, kept_keys)| {
            let known = pod_spec_schema
                .as_ref()
                .and_then(|s| fields_at(s, &path.0[base.0.len()..path.0.len() - 1]))
                .unwrap_or(kept_keys);
            let last = match path.0.last() {
                Some(Step::Key(k)) => k.clone(),
                _ => String::new(),
            };
            let hint = schema::closest(&last, known.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            Warning {
                pos: doc.spans.locate(&path.0, true),
                message: format!(
                    "document {}: {path}: not a field of a pod spec{hint}; the API server keeps it, but the operator ignores it: rename or remove it",
                    doc.index
                ),
            }
        })
        .collect()
}

/// The field names of the object at `path` in a JSON schema (following `$ref`s and `items`).
fn fields_at(root: &serde_json::Value, path: &[Step]) -> Option<Vec<String>> {
    fn resolve<'a>(root: &'a serde_json::Value, mut node: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        for _ in 0..8 {
            match node.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => node = root.pointer(r.strip_prefix('#')?)?,
                None => break,
            }
        }
        Some(node)
    }
    let mut node = resolve(root, root)?;
    for step in path {
        node = match step {
            Step::Key(k) => resolve(root, node.get("properties")?.get(k)?)?,
            Step::Index(_) => resolve(root, node.get("items")?)?,
        };
    }
    Some(node.get("properties")?.as_object()?.keys().cloned().collect())
}

/// Keys of `given` (recursively) that are missing from `kept`, with the keys `kept` has there.
fn dropped_fields(
    given: &serde_json::Value,
    kept: &serde_json::Value,
    path: &FieldPath,
    out: &mut Vec<(FieldPath, Vec<String>)>,
) {
    match (given, kept) {
        (serde_json::Value::Object(g), serde_json::Value::Object(k)) => {
            for (key, v) in g {
                match k.get(key) {
                    Some(kv) => dropped_fields(v, kv, &path.join(key), out),
                    None if v.is_null() => {}
                    // An empty list or map may be left out when serialized again.
                    None if v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|o| o.is_empty()) => {}
                    None => out.push((path.join(key), k.keys().cloned().collect())),
                }
            }
        }
        (serde_json::Value::Array(g), serde_json::Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
                dropped_fields(gv, kv, &path.index(i), out);
            }
        }
        _ => {}
    }
}

fn render_one(
    doc: Document,
    default_namespace: &str,
    options: &Options,
) -> Result<(String, Vec<Warning>), Vec<RenderError>> {
    let Document { index, mut value, spans } = doc;
    let name = value.pointer("/metadata/name").and_then(|n| n.as_str()).map(|n| {
        let ns = value.pointer("/metadata/namespace").and_then(|n| n.as_str()).unwrap_or(default_namespace);
        format!("{ns}/{n}")
    });
    let doc = DocRef { index, name };
    if let Err(errors) = schema::check(&value) {
        return Err(errors
            .into_iter()
            .map(|error| RenderError::Schema {
                doc: doc.clone(),
                pos: spans.locate(&error.path.0, error.at_key()),
                error,
            })
            .collect());
    }
    schema::normalize(&mut value);
    let app: WindowsApp = serde_json::from_value(value.clone())
        .map_err(|source| vec![RenderError::Decode { doc: doc.clone(), pos: spans.pos, source }])?;
    let mut valid = validate::validate_with(&app, Some(default_namespace), &options.policy).map_err(|errors| {
        errors
            .0
            .into_iter()
            .map(|error| RenderError::Invalid {
                pos: spans.locate(&text_path(&error.to_string(), &value), false),
                doc: doc.clone(),
                error,
            })
            .collect::<Vec<_>>()
    })?;
    valid.warm_up.with_platform(&options.warm_up);
    let build_error = |source| vec![RenderError::Build { doc: doc.clone(), pos: spans.pos, source }];
    let children = build::build(&valid).map_err(build_error)?;
    let objects = children.to_ordered_json().map_err(build_error)?;
    let refused = if options.check_children { admission::check(&objects, &value) } else { Vec::new() };
    if !refused.is_empty() {
        return Err(refused
            .into_iter()
            .map(|error| RenderError::Child {
                pos: error.origin.as_ref().map_or(spans.pos, |o| spans.locate(&o.0, false)),
                doc: doc.clone(),
                error,
            })
            .collect());
    }
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&o).map_err(|e| vec![RenderError::Serialize(e)])?);
    }
    let pod = children.workload.as_ref().and_then(|w| w.template().spec.as_ref());
    Ok((out, advice(&doc, &spans, pod)))
}

/// The advice on the app container's memory and CPU settings (see [`crate::advice`]), as
/// warnings at `spec.resources`: the operator applies the app all the same.
fn advice(doc: &DocRef, spans: &yaml::Spans, pod: Option<&k8s_openapi::api::core::v1::PodSpec>) -> Vec<Warning> {
    // The `resources:` key, or where the spec starts when there is none.
    let pos = spans.locate(&[Step::Key("spec".into()), Step::Key("resources".into())], true);
    let app = doc.name.as_deref().map(|n| format!(" (WindowsApp {n})")).unwrap_or_default();
    crate::advice::resources(pod)
        .into_iter()
        .map(|a| Warning {
            pos,
            message: format!(
                "document {}{app}: {} (status condition ResourcesAdvised, reason {})",
                doc.index, a.message, a.reason
            ),
        })
        .collect()
}

/// The path that starts a validation message (`spec.volumes[data].mountPath: ...`), with list
/// entries named by their `name` resolved to their index in `doc`.
fn text_path(message: &str, doc: &serde_json::Value) -> Vec<Step> {
    let head = message.split(": ").next().unwrap_or("");
    let mut steps = Vec::new();
    let mut here = Some(doc);
    let mut rest = head;
    while !rest.is_empty() {
        let (step, next) = if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            let inner = &r[..end];
            let index = inner.parse::<usize>().ok().or_else(|| {
                here.and_then(|v| v.as_array())
                    .and_then(|items| items.iter().position(|i| i.get("name").and_then(|n| n.as_str()) == Some(inner)))
            });
            match index {
                Some(i) => (Step::Index(i), &r[end + 1..]),
                None => break,
            }
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 || r[..end].contains(char::is_whitespace) {
                break;
            }
            (Step::Key(r[..end].to_owned()), &r[end..])
        };
        here = here.and_then(|v| match &step {
            Step::Key(k) => v.get(k),
            Step::Index(i) => v.get(*i),
        });
        steps.push(step);
        rest = next;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_messages_lead_to_their_field() {
        let doc = json!({"spec": {"volumes": [{"name": "a"}, {"name": "data", "mountPath": "x"}],
            "config": {"files": [{"name": "Web.config"}]}}});
        let steps = |m: &str| FieldPath(text_path(m, &doc)).to_string();
        assert_eq!(steps("spec.volumes[data].mountPath: the mount path is used twice"), "spec.volumes[1].mountPath");
        assert_eq!(steps("spec.config.files[Web.config]: set exactly one"), "spec.config.files[0]");
        assert_eq!(steps("spec.ports: the name \"a\" is used twice"), "spec.ports");
        assert_eq!(steps("spec.volumes[nothere].mountPath: x"), "spec.volumes");
        assert_eq!(steps("metadata.name: \"A\" must be"), "metadata.name");
    }

    #[test]
    fn keys_given_twice_are_warned_about_also_when_the_input_fails() {
        let input = "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: a}\nspec: {image: x, replicas: 1, replicas: -1}\n";
        assert!(render(input, "default").is_err());
        let w = warnings(input, "default");
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].pos.line, w[0].pos.column), (4, 31));
        assert!(w[0].message.contains("spec.replicas is given twice"), "{w:?}");
    }

    #[test]
    fn a_windows_app_given_twice_is_a_warning_naming_both_documents() {
        let app = |name: &str, ns: &str| {
            format!(
                "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata:\n  name: {name}\n{ns}spec: {{image: x}}\n"
            )
        };
        let input = [
            app("web", ""),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n".to_owned(),
            app("web", "  namespace: other\n"),
            app("api", ""),
            app("web", "  namespace: default\n"),
            app("web", ""),
        ]
        .join("---\n");
        let rendered = render(&input, "default").expect("valid apps render");
        let shown: Vec<String> = rendered.warnings.iter().map(|w| format!("{}: {}", w.pos, w.message)).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        // Line 4 is the first `name: web` (in default); the one in namespace `other` is another app.
        assert!(
            shown[0].starts_with("27:9: document 4 (WindowsApp default/web): the same WindowsApp as document 0 (line 4); kubectl applies both, this one over that one, so document 0 has no effect"),
            "{shown:#?}"
        );
        assert!(
            shown[1]
                .starts_with("34:9: document 5 (WindowsApp default/web): the same WindowsApp as document 4 (line 27)"),
            "{shown:#?}"
        );
        // Apps without a namespace are in the default namespace, as kubectl puts them.
        let other = render(&input, "other").expect("valid apps render");
        let shown: Vec<&str> = other.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(
            shown[0].starts_with("document 2 (WindowsApp other/web): the same WindowsApp as document 0"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("document 5 (WindowsApp other/web): the same WindowsApp as document 2"),
            "{shown:#?}"
        );
        // Shown with the errors when the input fails.
        let failing = format!("{input}---\n{}", app("broken", "").replace("image: x", "image: ''"));
        assert!(render(&failing, "default").is_err());
        assert_eq!(warnings(&failing, "default"), rendered.warnings);
    }

    #[test]
    fn memory_and_cpu_settings_are_advised_on_at_spec_resources() {
        let app = |resources: &str| {
            format!(
                "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: a}}\nspec:\n  image: x\n{resources}"
            )
        };
        let rendered = render(&app(""), "default").expect("renders");
        let shown: Vec<String> = rendered.advice.iter().map(|w| format!("{}: {}", w.pos, w.message)).collect();
        assert_eq!(shown.len(), 1, "{shown:#?}");
        assert!(
            shown[0].starts_with("5:3: document 0 (WindowsApp default/a): the container has no memory limit"),
            "{shown:#?}"
        );
        assert!(shown[0].ends_with("(status condition ResourcesAdvised, reason NoMemoryLimit)"), "{shown:#?}");
        let low = app("  resources:\n    requests: {memory: 1Gi}\n    limits: {memory: 2Gi}\n");
        let shown: Vec<String> = render(&low, "default")
            .expect("renders")
            .advice
            .iter()
            .map(|w| format!("{}: {}", w.pos, w.message))
            .collect();
        assert!(
            shown.len() == 1
                && shown[0].starts_with(
                    "6:3: document 0 (WindowsApp default/a): requests.memory (1Gi) is below limits.memory (2Gi)"
                ),
            "{shown:#?}"
        );
        let equal = app("  resources:\n    requests: {memory: 2Gi, cpu: 500m}\n    limits: {memory: 2Gi, cpu: 500m}\n");
        assert_eq!(render(&equal, "default").expect("renders").advice, Vec::new());
    }

    #[test]
    fn pod_template_fields_the_operator_would_ignore_are_warned_about() {
        let input = "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: a}\nspec:\n  image: x\n  podTemplate:\n    spec:\n      nodeSelecter: {a: b}\n      priorityClassName: high\n      containers:\n        - name: app\n          imagePullPolicyy: Always\n";
        let rendered = render(input, "default").expect("the API server accepts it, and so does render");
        let shown: Vec<String> = rendered.warnings.iter().map(|w| format!("{}: {}", w.pos, w.message)).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(shown[0].starts_with("12:11: document 0: spec.podTemplate.spec.containers[0].imagePullPolicyy: not a field of a pod spec (did you mean \"imagePullPolicy\"?)"), "{shown:#?}");
        assert!(shown[1].starts_with("8:7: document 0: spec.podTemplate.spec.nodeSelecter: not a field of a pod spec (did you mean \"nodeSelector\"?)"), "{shown:#?}");
    }

    #[test]
    fn documents_that_are_not_objects_or_not_served_are_refused() {
        let e = render("- a\n- b\n", "default").expect_err("a list");
        assert!(e[0].to_string().contains("is not a mapping"), "{}", e[0]);
        let e = render("apiVersion: winapp.dev/v1\nkind: WindowsApp\n", "default").expect_err("v1");
        assert!(e[0].to_string().contains("use winapp.dev/v1alpha1"), "{}", e[0]);
        assert_eq!(e[0].pos().map(|p| p.line), Some(1));
        let e = render("apiVersion: winapp.dev/v1alpha1\nkind: WindowsAp\n", "default").expect_err("kind");
        assert!(e[0].to_string().contains("did you mean WindowsApp?"), "{}", e[0]);
        let e = render("metadata: {name: x}\n", "default").expect_err("no kind");
        assert!(e[0].to_string().contains("kind: missing"), "{}", e[0]);
        let e = render("apiVersion: v1\nkind: ConfigMap\n", "default").expect_err("no app");
        assert!(matches!(e[0], RenderError::NoWindowsApp));
    }
}
