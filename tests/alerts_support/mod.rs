//! What tests/alerts.rs and tests/alerts_dashboard.rs share: the renders (kustomize components,
//! the chart), the tools (helm, promtool), the metrics the operator exports, and the vector
//! selectors of a PromQL expression, so that a rule or a panel that queries a metric the operator
//! does not export, or a label it does not carry, fails a plain `cargo test`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use winapp_operator::metrics::{Metrics, Sample};

use crate::support::{run, unique_name};

pub const RULES_COMPONENT: &str = "config/components/prometheus-rules/prometheusrule.yaml";
pub const RULES_CHART_COPY: &str = "charts/winapp-operator/files/prometheusrule.yaml";
pub const DASHBOARD_COMPONENT: &str = "config/components/grafana-dashboard/winapp-operator.json";
pub const DASHBOARD_CHART_COPY: &str = "charts/winapp-operator/files/winapp-operator.json";

/// The metrics that other branches add with these names and labels (the alerts and the dashboard
/// use them before they are merged). Once one is exported, its labels must be these.
pub const AGREED: &[(&str, &[&str])] = &[
    // Apps whose Stalled condition is True, by reason.
    ("winapp_apps_stalled", &["reason"]),
    // 1 on the replica that leads with synced caches, 0 on standbys.
    ("winapp_leader", &[]),
    // Apps whose PodDisruptionBudget blocks a node drain now.
    ("winapp_apps_drain_blocked", &[]),
    // Apps rolling out a change from an operator upgrade (rolling) and waiting their turn (waiting).
    ("winapp_operator_rollouts", &["state"]),
];

/// Labels that Prometheus puts on every series of a target (a ServiceMonitor's among them).
pub const TARGET_LABELS: &[&str] = &["job", "namespace", "instance", "pod", "service", "endpoint", "container"];

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A directory of its own under the test target's temporary directory.
pub fn scratch(prefix: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A tool from `$VAR`, or the binary that `hack/<dir>/build.sh` builds (cached) and prints last.
fn tool(var: &str, dir: &str) -> String {
    if let Some(bin) = std::env::var_os(var).filter(|b| !b.is_empty()) {
        return bin.to_string_lossy().into_owned();
    }
    let script = root().join(format!("hack/{dir}/build.sh"));
    let out = run(&script.to_string_lossy(), &[], None)
        .unwrap_or_else(|e| panic!("cannot build {dir} (set {var} to use another binary): {e}"));
    out.lines().last().unwrap_or_else(|| panic!("hack/{dir}/build.sh printed no path")).trim().to_owned()
}

pub fn helm_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| tool("HELM", "helm"))
}

pub fn promtool_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| tool("PROMTOOL", "promtool"))
}

/// `helm template RELEASE charts/winapp-operator -n NAMESPACE EXTRA...`.
pub fn template(release: &str, namespace: &str, extra: &[&str]) -> Result<String, String> {
    let chart = root().join("charts/winapp-operator").to_string_lossy().into_owned();
    let mut args = vec!["template", release, chart.as_str(), "--namespace", namespace];
    args.extend_from_slice(extra);
    run(helm_bin(), &args, None)
}

pub use crate::support::{documents, kustomize};

/// The one object of `kind` among `objects`.
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let mut of_kind = objects.iter().filter(|o| o["kind"] == kind);
    let first = of_kind.next().unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(of_kind.next().is_none(), "more than one {kind} rendered");
    first
}

/// The PrometheusRule of config/default with the ServiceMonitor and the rules components.
pub fn kustomize_rule() -> Value {
    let objects = kustomize(&["default"], &["components/servicemonitor", "components/prometheus-rules"]);
    only(&objects, "PrometheusRule").clone()
}

/// The chart's PrometheusRule, released as config/default installs the operator.
pub fn chart_rule() -> Value {
    let set = "prometheusRule.enabled=true,serviceMonitor.enabled=true";
    let yaml = template("winapp-operator", "winapp-system", &["--set", set]).unwrap_or_else(|e| panic!("{e}"));
    only(&documents(&yaml), "PrometheusRule").clone()
}

/// Every alerting rule of a PrometheusRule's spec.
pub fn alerts(spec: &Value) -> Vec<&Value> {
    let groups = spec["groups"].as_array().expect("spec.groups");
    groups.iter().flat_map(|g| g["rules"].as_array().expect("rules").iter()).collect()
}

/// Sample name -> the label names of its samples, for every metric the operator exports; `None`
/// for a family that has no sample yet (its labels are unknown). Every family with labels is
/// given one sample first, so that its labels show.
pub fn exported() -> &'static BTreeMap<String, Option<BTreeSet<String>>> {
    static EXPORTED: OnceLock<BTreeMap<String, Option<BTreeSet<String>>>> = OnceLock::new();
    EXPORTED.get_or_init(|| {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(5));
        m.failed("ApplyFailed");
        m.child_written("Deployment");
        m.status_written();
        m.pod_problem("ImagePullFailed");
        let uri: http::Uri = "/api/v1/namespaces/ns/services/web".parse().expect("uri");
        m.api_request(&http::Method::GET, &uri);
        m.fenced_write(&http::Method::PATCH, &uri);
        m.triggered("windowsapps");
        m.sample_caches_with(Box::new(|| Sample {
            caches: vec![("Deployment", 1, 100)],
            remembered_apps: 1,
            rollouts: (1, 2),
        }));
        let stalled = winapp_operator::metrics::AppGauges {
            ready: "False".into(),
            stalled: Some("SecretMissing".into()),
            drain_blocked: true,
        };
        m.set_app(kube::runtime::reflector::ObjectRef::new("web").within("shop"), Some(stalled));
        m.set_leader(true);
        parse_exposition(&m.encode().expect("encode the metrics"))
    })
}

/// Sample names and their label names from an OpenMetrics text exposition.
pub fn parse_exposition(text: &str) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)=""#).expect("regex");
    let mut out: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut words = decl.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
            let samples = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["bucket", "sum", "count"].iter().map(|s| format!("{name}_{s}")).collect(),
                _ => vec![name.to_owned()],
            };
            for sample in samples {
                out.entry(sample).or_insert(None);
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels: BTreeSet<String> = match line[name_end..].strip_prefix('{') {
                Some(rest) => label
                    .captures_iter(&rest[..rest.find('}').unwrap_or(rest.len())])
                    .map(|c| c[1].to_owned())
                    .collect(),
                None => BTreeSet::new(),
            };
            out.entry(line[..name_end].to_owned()).or_insert(None).get_or_insert_with(BTreeSet::new).extend(labels);
        }
    }
    out
}

/// The AGREED metrics that `exported` carries with other labels than agreed.
pub fn agreed_problems(exported: &BTreeMap<String, Option<BTreeSet<String>>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (metric, labels) in AGREED {
        let agreed: BTreeSet<String> = labels.iter().map(|l| l.to_string()).collect();
        if let Some(Some(found)) = exported.get(*metric)
            && found != &agreed
        {
            problems
                .push(format!("{metric} is exported with labels {found:?}; the alerts and dashboard use {agreed:?}"));
        }
    }
    problems
}

/// The label names a series of `metric` may carry, or why it is not known.
pub fn known_labels(metric: &str) -> Result<BTreeSet<String>, String> {
    let targets = TARGET_LABELS.iter().map(|l| l.to_string());
    if metric == "up" {
        return Ok(targets.collect());
    }
    let agreed = AGREED.iter().find(|(name, _)| *name == metric).map(|(_, labels)| labels);
    let own: BTreeSet<String> = match (exported().get(metric), agreed) {
        (Some(Some(labels)), _) => labels.clone(),
        (_, Some(labels)) => labels.iter().map(|l| l.to_string()).collect(),
        (Some(None), None) => return Err(format!("{metric} has no sample: give its family one in exported()")),
        (None, None) => {
            return Err(format!("{metric} is neither exported by the operator (src/metrics.rs) nor in AGREED"));
        }
    };
    Ok(own.into_iter().chain(targets).collect())
}

/// What is wrong with the selectors of `expr`: unknown metrics, labels they do not carry.
pub fn expr_problems(expr: &str) -> Vec<String> {
    let selectors = match selectors(expr) {
        Ok(s) if s.is_empty() => return vec![format!("no metric in `{expr}`")],
        Ok(s) => s,
        Err(e) => return vec![format!("cannot read `{expr}`: {e}")],
    };
    let mut problems = Vec::new();
    for s in selectors {
        match known_labels(&s.metric) {
            Err(e) => problems.push(e),
            Ok(known) => {
                for (label, _) in &s.matchers {
                    if !known.contains(label) {
                        problems.push(format!("{} has no label {label} (it has {known:?})", s.metric));
                    }
                }
            }
        }
    }
    problems
}

/// One vector selector of a PromQL expression: the metric and its matchers (label, value).
#[derive(Debug, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<(String, String)>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "Inf", "NaN", "inf", "nan"];

/// The vector selectors of a PromQL expression (enough of PromQL for rules and panels: functions,
/// aggregations with by/without, binary operators with on/ignoring/group_left, ranges, strings).
pub fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = string(&chars, i)?.1;
        } else if c == '#' {
            i = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |p| i + p);
        } else if c == '[' {
            i = chars[i..].iter().position(|&c| c == ']').map(|p| i + p + 1).ok_or("unclosed [")?;
        } else if c == '{' {
            let (matchers, next) = matchers(&chars, i)?;
            let name = matchers.iter().find(|(l, _)| l == "__name__").map(|(_, v)| v.clone());
            let metric = name.ok_or("a selector without a metric name")?;
            out.push(Selector { metric, matchers: matchers.into_iter().filter(|(l, _)| l != "__name__").collect() });
            i = next;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':')) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let next = (i..chars.len()).find(|&j| !chars[j].is_whitespace()).unwrap_or(chars.len());
            let next_char = chars.get(next).copied();
            if LABEL_LISTS.contains(&ident.as_str()) {
                if next_char == Some('(') {
                    i = chars[next..].iter().position(|&c| c == ')').map(|p| next + p + 1).ok_or("unclosed (")?;
                }
            } else if AGGREGATIONS.contains(&ident.as_str())
                || KEYWORDS.contains(&ident.as_str())
                || next_char == Some('(')
            {
                // A function, an aggregation or a keyword: what follows is read on.
            } else if next_char == Some('{') {
                let (matchers, after) = matchers(&chars, next)?;
                out.push(Selector { metric: ident, matchers });
                i = after;
            } else {
                out.push(Selector { metric: ident, matchers: Vec::new() });
            }
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// The matchers of `{...}` at `open`, and the index after its `}`.
fn matchers(chars: &[char], open: usize) -> Result<(Vec<(String, String)>, usize), String> {
    let mut out = Vec::new();
    let mut i = open + 1;
    let skip = |i: &mut usize| {
        while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
            *i += 1;
        }
    };
    loop {
        skip(&mut i);
        match chars.get(i) {
            None => return Err("unclosed {".into()),
            Some('}') => return Ok((out, i + 1)),
            Some(_) => {}
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~' | ' ') {
            i += 1;
        }
        if label.is_empty() || !matches!(chars.get(i), Some('"' | '\'' | '`')) {
            return Err(format!("a matcher that is not label=\"value\" at {start}"));
        }
        let (value, next) = string(chars, i)?;
        out.push((label, value));
        i = next;
    }
}

/// The string literal at `open` (its quote), unescaped, and the index after its closing quote.
fn string(chars: &[char], open: usize) -> Result<(String, usize), String> {
    let quote = chars[open];
    let mut value = String::new();
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => {
                value.extend(chars.get(i + 1));
                i += 2;
            }
            c if c == quote => return Ok((value, i + 1)),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    Err("unclosed string".into())
}
