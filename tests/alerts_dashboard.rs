//! The Grafana dashboard (config/components/grafana-dashboard, the chart's `grafanaDashboard`):
//! valid JSON that Grafana lays out (unique ids, panels on the 24-column grid without overlap),
//! every query names a metric the operator exports (or `up`) with labels it carries, for the
//! chosen namespace and job, covering what the alerts watch; the chart ships the component's
//! ConfigMap. The PromQL parse by promtool is #[ignore]d (scripts/test builds promtool).

mod alerts_support;
mod support;

use std::collections::BTreeSet;

use alerts_support::{
    DASHBOARD_CHART_COPY, DASHBOARD_COMPONENT, RULES_COMPONENT, alerts, documents, expr_problems, known_labels,
    kustomize, only, promtool_bin, read, selectors, template,
};
use serde_json::Value;
use support::run;

/// What the dashboard must show, by metric.
const SHOWN: &[&str] = &[
    "winapp_apps",
    "winapp_apps_stalled",
    "winapp_reconciles_total",
    "winapp_reconcile_failures_total",
    "winapp_reconcile_duration_seconds_bucket",
    "winapp_api_requests_total",
    "winapp_cache_objects",
    "winapp_operator_rollouts",
    "winapp_apps_drain_blocked",
    "winapp_leader",
    "up",
];
const VARIABLES_BUILTIN: &[&str] = &["__rate_interval", "__interval", "__range"];

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD_COMPONENT)).unwrap_or_else(|e| panic!("{DASHBOARD_COMPONENT}: {e}"))
}

/// Every panel's queries: (panel title, expr).
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut out = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        for target in panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets")) {
            let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{title}: a target without expr"));
            out.push((title.clone(), expr.to_owned()));
        }
    }
    out
}

/// The `$name` and `${name}` variables that `text` uses.
fn variables(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").expect("regex");
    re.captures_iter(text).map(|c| c[1].to_owned()).collect()
}

#[test]
fn the_chart_holds_the_components_dashboard_byte_for_byte() {
    let component = read(DASHBOARD_COMPONENT);
    assert!(
        component == read(DASHBOARD_CHART_COPY),
        "{DASHBOARD_CHART_COPY} is stale: cp {DASHBOARD_COMPONENT} {DASHBOARD_CHART_COPY}"
    );
    let mut files: Vec<String> = std::fs::read_dir(alerts_support::root().join("charts/winapp-operator/files"))
        .expect("the chart's files/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["prometheusrule.yaml", "winapp-operator.json"], "the chart's files/ holds the two copies only");
}

#[test]
fn the_dashboard_lays_out_its_panels_on_the_grid() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "winapp-operator");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty() && !panel["description"].as_str().unwrap_or_default().is_empty(), "{panel}");
        assert!(ids.insert(panel["id"].as_u64().expect("a numeric id")), "{title}: id used twice");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: the data source is not the variable");
        let refs: Vec<&str> = panel["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| t["refId"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(refs.iter().collect::<BTreeSet<_>>().len(), refs.len(), "{title}: refId used twice");
        let grid = |k: &str| panel["gridPos"][k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}"));
        let (x, y, w, h) = (grid("x"), grid("y"), grid("w"), grid("h"));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos off the 24 columns");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(cells.insert((cx, cy)), "{title} overlaps another panel at ({cx}, {cy})");
            }
        }
    }
}

#[test]
fn every_dashboard_query_names_an_exported_metric_for_the_chosen_operator() {
    let dashboard = dashboard();
    let defined: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("a variable's name").to_owned())
        .collect();
    assert_eq!(defined, BTreeSet::from(["datasource", "namespace", "job"].map(String::from)));
    let mut problems = Vec::new();
    let mut shown = BTreeSet::new();
    for (title, expr) in queries(&dashboard) {
        problems.extend(expr_problems(&expr).into_iter().map(|p| format!("{title}: {p}")));
        for s in selectors(&expr).unwrap_or_default() {
            let matchers: BTreeSet<(String, String)> = s.matchers.into_iter().collect();
            for scope in [("namespace", "$namespace"), ("job", "$job")] {
                if !matchers.contains(&(scope.0.to_owned(), scope.1.to_owned())) {
                    problems.push(format!("{title}: {} does not select {}=\"{}\"", s.metric, scope.0, scope.1));
                }
            }
            shown.insert(s.metric);
        }
        for var in variables(&expr) {
            if !defined.contains(&var) && !VARIABLES_BUILTIN.contains(&var.as_str()) {
                problems.push(format!("{title}: ${var} is not a variable of the dashboard"));
            }
        }
    }
    // The variables' own queries: label_values(<selector>, <label>).
    for var in dashboard["templating"]["list"].as_array().expect("list") {
        let Some(query) = var["query"].as_str().and_then(|q| q.strip_prefix("label_values(")) else { continue };
        let (selector, label) = query.trim_end_matches(')').rsplit_once(',').expect("label_values(selector, label)");
        problems.extend(expr_problems(selector));
        for s in selectors(selector).unwrap_or_default() {
            if !known_labels(&s.metric).is_ok_and(|l| l.contains(label.trim())) {
                problems.push(format!("${}: {} has no label {}", var["name"], s.metric, label.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let missing: Vec<&&str> = SHOWN.iter().filter(|m| !shown.contains(**m)).collect();
    assert!(missing.is_empty(), "the dashboard does not show {missing:?}");
    // Every metric an alert watches is on the dashboard, so the page and the picture agree.
    let rules = documents(&read(RULES_COMPONENT)).into_iter().next().expect("the PrometheusRule");
    for rule in alerts(&rules["spec"]) {
        for s in selectors(rule["expr"].as_str().unwrap_or_default()).expect("expr") {
            assert!(
                shown.contains(&s.metric),
                "{} watches {}, which the dashboard does not show",
                rule["alert"],
                s.metric
            );
        }
    }
}

#[test]
fn the_chart_and_the_component_ship_the_same_dashboard_configmap() {
    let objects = kustomize(&["default"], &["components/grafana-dashboard"]);
    let component = objects.iter().find(|o| o["kind"] == "ConfigMap").expect("the dashboard ConfigMap");
    assert_eq!(component["metadata"]["name"], "winapp-operator-dashboard", "a stable name, no hash suffix");
    let yaml = template("winapp-operator", "winapp-system", &[]).expect("default render");
    assert!(!documents(&yaml).iter().any(|o| o["kind"] == "ConfigMap"), "no dashboard by default");
    let set = "grafanaDashboard.enabled=true,grafanaDashboard.annotations.grafana_folder=Platform";
    let objects = documents(&template("winapp-operator", "winapp-system", &["--set", set]).expect("render"));
    let chart = only(&objects, "ConfigMap");
    assert_eq!(chart["data"], component["data"], "the chart's dashboard differs from the component's");
    assert_eq!(chart["data"]["winapp-operator.json"], read(DASHBOARD_COMPONENT), "the file, byte for byte");
    for cm in [chart, component] {
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1", "the sidecar's label");
        assert_eq!(cm["metadata"]["namespace"], "winapp-system");
    }
    assert_eq!(chart["metadata"]["annotations"]["grafana_folder"], "Platform");
    let set = "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring";
    let objects = documents(&template("t", "ns", &["--set", set]).expect("render"));
    assert_eq!(only(&objects, "ConfigMap")["metadata"]["namespace"], "monitoring");
}

#[test]
#[ignore = "needs promtool: scripts/test builds it (or set PROMTOOL)"]
fn every_dashboard_query_parses_as_promql() {
    let dashboard = dashboard();
    let concrete = |expr: &str| {
        expr.replace("$__rate_interval", "5m")
            .replace("$namespace", "winapp-system")
            .replace("$job", "winapp-operator-metrics")
    };
    let mut failures = Vec::new();
    for (title, expr) in queries(&dashboard) {
        if let Err(e) = run(promtool_bin(), &["--experimental", "promql", "format", &concrete(&expr)], None) {
            failures.push(format!("{title}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // It can fail.
    run(promtool_bin(), &["--experimental", "promql", "format", "sum by (le (x)"], None).expect_err("parsed");
}
