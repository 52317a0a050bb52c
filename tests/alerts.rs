//! The alerts (config/components/prometheus-rules, the chart's `prometheusRule`): the agreed set,
//! each with a summary, a description that says what to run and a runbook in the README; the
//! metrics and labels they query exist; the chart renders the component's rules; its values are in
//! the schema; promtool finds the rules valid and its unit tests (tests/alerts/, one file per
//! alert) see each alert fire after its `for` and stay silent below its threshold.
//!
//! The promtool tests are #[ignore]d: scripts/test builds promtool and runs them (or set PROMTOOL).
//! helm is `$HELM` or what hack/helm/build.sh builds; kustomize is kubectl's. No cluster is needed.

mod alerts_support;
mod support;

use std::collections::BTreeSet;

use alerts_support::{
    RULES_CHART_COPY, RULES_COMPONENT, agreed_problems, alerts, chart_rule, documents, exported, expr_problems,
    kustomize_rule, only, parse_exposition, promtool_bin, read, root, scratch, selectors, template,
};
use serde_json::{Value, json};
use support::run;

const RUNBOOKS: &str = "https://github.com/winapp-dev/winapp-operator/blob/main/README.md";

/// The alerts: name, `for`, severities it may have, metrics its expr must query.
const EXPECTED: &[(&str, &str, &[&str], &[&str])] = &[
    ("WinAppOperatorDown", "5m", &["critical"], &["up", "winapp_leader"]),
    ("WinAppReconcileErrors", "15m", &["warning", "critical"], &["winapp_reconcile_failures_total"]),
    ("WindowsAppsStalled", "15m", &["warning", "critical"], &["winapp_apps_stalled"]),
    ("WindowsAppsNotReady", "30m", &["warning", "critical"], &["winapp_apps"]),
    ("WindowsAppDrainBlocked", "30m", &["warning", "critical"], &["winapp_apps_drain_blocked"]),
    ("WindowsAppRolloutsWaiting", "2h", &["info", "warning"], &["winapp_operator_rollouts"]),
];

fn component_spec() -> Value {
    documents(&read(RULES_COMPONENT)).into_iter().next().expect("the PrometheusRule")["spec"].clone()
}

fn text<'a>(rule: &'a Value, field: &str) -> &'a str {
    let name = rule["alert"].as_str().unwrap_or_default();
    rule["annotations"][field].as_str().unwrap_or_else(|| panic!("{name} has no annotation {field}"))
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of the headings inside the README's "Alerts and dashboard" section.
fn alert_section_anchors() -> BTreeSet<String> {
    let readme = read("README.md");
    let section = readme.split("\n## ").find(|s| s.starts_with("Alerts and dashboard\n"));
    let section = section.expect("README.md has a section \"## Alerts and dashboard\"");
    section.lines().filter_map(|l| l.strip_prefix('#')).map(|h| slug(h.trim_start_matches('#'))).collect()
}

#[test]
fn the_chart_holds_the_components_rules_byte_for_byte() {
    let component = read(RULES_COMPONENT);
    let copy = read(RULES_CHART_COPY);
    assert!(component == copy, "{RULES_CHART_COPY} is stale: cp {RULES_COMPONENT} {RULES_CHART_COPY}");
}

#[test]
fn every_alert_is_expected_says_what_to_run_and_links_its_runbook_in_the_readme() {
    let spec = component_spec();
    let rules = alerts(&spec);
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().expect("only alerting rules")).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(names.iter().collect::<BTreeSet<_>>(), expected.iter().collect::<BTreeSet<_>>());
    assert_eq!(names.len(), expected.len(), "an alert is defined twice: {names:?}");
    let anchors = alert_section_anchors();
    for rule in rules {
        let name = rule["alert"].as_str().unwrap_or_default();
        let (_, after, severities, metrics) = EXPECTED.iter().find(|e| e.0 == name).expect("expected");
        assert_eq!(rule["for"], *after, "{name}: for");
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(severities.contains(&severity), "{name}: severity {severity:?}, expected one of {severities:?}");
        let expr = rule["expr"].as_str().unwrap_or_default();
        let queried: BTreeSet<String> = selectors(expr).expect("expr").into_iter().map(|s| s.metric).collect();
        for metric in *metrics {
            assert!(queried.contains(*metric), "{name} does not query {metric}: {expr}");
        }
        assert!(!text(rule, "summary").is_empty(), "{name}: empty summary");
        let description = text(rule, "description");
        for command in ["kubectl ", "kubectl describe", "winapp-operator doctor"] {
            assert!(description.contains(command), "{name}: the description does not say to run `{command}`");
        }
        let anchor = name.to_lowercase();
        assert_eq!(text(rule, "runbook_url"), format!("{RUNBOOKS}#{anchor}"), "{name}: runbook_url");
        assert!(anchors.contains(&anchor), "{name}: no heading with anchor #{anchor} in the README's Alerts section");
    }
    // What only absent() sees: no target at all.
    let down = component_spec()["groups"][0]["rules"][0].clone();
    assert!(down["expr"].as_str().unwrap_or_default().contains("absent(up{"), "WinAppOperatorDown without absent()");
}

#[test]
fn every_alert_has_unit_tests_that_fire_after_its_for_and_stay_silent_below_its_threshold() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("tests/alerts"))
        .expect("tests/alerts/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = EXPECTED.iter().map(|e| format!("{}.yaml", e.0)).collect();
    expected.sort();
    assert_eq!(files, expected, "tests/alerts/ holds one <alert>.yaml per alert");
    for file in files {
        let alert = file.trim_end_matches(".yaml");
        let doc = &documents(&read(&format!("tests/alerts/{file}")))[0];
        assert_eq!(doc["rule_files"], json!(["rules.yaml"]), "{file}: rule_files");
        let groups = doc["tests"].as_array().unwrap_or_else(|| panic!("{file}: no tests"));
        let (mut fires_after_for, mut silent_only) = (false, false);
        for group in groups {
            let evals = group["alert_rule_test"].as_array().unwrap_or_else(|| panic!("{file}: no alert_rule_test"));
            for eval in evals {
                assert_eq!(eval["alertname"], alert, "{file}: a test of another alert");
            }
            let firing = evals.iter().filter(|e| e["exp_alerts"].as_array().is_some_and(|a| !a.is_empty())).count();
            fires_after_for |= firing > 0 && firing < evals.len();
            silent_only |= firing == 0;
        }
        assert!(fires_after_for, "{file}: no test sees the alert silent, then firing");
        assert!(silent_only, "{file}: no test where the alert stays silent");
    }
}

#[test]
fn the_rules_query_only_metrics_and_labels_the_operator_exports() {
    let spec = component_spec();
    let problems: Vec<String> = alerts(&spec)
        .iter()
        .flat_map(|r| {
            expr_problems(r["expr"].as_str().unwrap_or_default())
                .into_iter()
                .map(move |p| format!("{}: {p}", r["alert"]))
        })
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    // And the check can fail: a misspelt metric, a label the metric does not carry.
    assert!(!expr_problems("max(winapp_app{ready=\"False\"}) > 0").is_empty());
    assert!(!expr_problems("max(winapp_apps{reason=\"X\"}) > 0").is_empty());
}

#[test]
fn agreed_metrics_carry_the_agreed_labels_once_exported() {
    assert_eq!(agreed_problems(exported()), Vec::<String>::new());
    // The operator's own metrics are read from its registry, by sample name.
    for metric in
        ["winapp_reconciles_total", "winapp_reconcile_failures_total", "winapp_reconcile_duration_seconds_bucket"]
    {
        assert!(exported().contains_key(metric), "{metric} not found in {:?}", exported().keys());
    }
    assert_eq!(exported()["winapp_apps"], Some(BTreeSet::from(["ready".to_owned()])));
    // A branch that exports an agreed metric with other labels is caught.
    let other =
        parse_exposition("# TYPE winapp_leader gauge\nwinapp_leader{pod=\"a\"} 1\n# TYPE winapp_apps_stalled gauge\n");
    assert_eq!(agreed_problems(&other).len(), 1, "{other:?}");
}

#[test]
fn the_selector_reader_finds_each_metric_and_its_labels() {
    let expr = r#"sum by (namespace, job, category) (rate(winapp_reconcile_failures_total{job="a",x=~"b\"c"}[5m]))
        / ignoring (category) group_left sum by (namespace, job) (rate(winapp_reconciles_total[$__rate_interval]))
        > 0.1 or absent(up{job="a"}) or histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) or {__name__="n"}"#;
    let found: Vec<(String, Vec<String>)> = selectors(expr)
        .expect("reads")
        .into_iter()
        .map(|s| (s.metric, s.matchers.into_iter().map(|(l, v)| format!("{l}={v}")).collect()))
        .collect();
    let expected = [
        ("winapp_reconcile_failures_total", vec!["job=a", "x=b\"c"]),
        ("winapp_reconciles_total", vec![]),
        ("up", vec!["job=a"]),
        ("h_bucket", vec![]),
        ("n", vec![]),
    ];
    let expected: Vec<(String, Vec<String>)> =
        expected.iter().map(|(m, l)| (m.to_string(), l.iter().map(|s| s.to_string()).collect())).collect();
    assert_eq!(found, expected);
    assert!(selectors("up{job=}").is_err());
}

#[test]
fn the_chart_renders_the_rules_of_the_kustomize_component() {
    let component = kustomize_rule();
    let chart = chart_rule();
    assert_eq!(chart["spec"], component["spec"], "the chart's rules differ from config/components/prometheus-rules");
    for field in ["name", "namespace"] {
        assert_eq!(chart["metadata"][field], component["metadata"][field], "metadata.{field}");
    }
    // The kustomize component finds the targets of config/components/servicemonitor: the metrics
    // Service's name is their job, its namespace theirs.
    let objects = alerts_support::kustomize(&["default"], &["components/servicemonitor"]);
    let service = only(&objects, "Service");
    let selector = format!(
        "up{{job={:?},namespace={:?}}}",
        service["metadata"]["name"].as_str().unwrap_or_default(),
        service["metadata"]["namespace"].as_str().unwrap_or_default()
    );
    assert!(
        component["spec"]["groups"][0]["rules"][0]["expr"].as_str().unwrap_or_default().contains(&selector),
        "{selector}"
    );
}

#[test]
fn the_chart_rules_follow_the_release_and_need_the_metrics() {
    let rendered = |extra: &[&str]| template("t", "ns", extra);
    let objects = documents(&rendered(&[]).expect("default render"));
    assert!(!objects.iter().any(|o| o["kind"] == "PrometheusRule"), "no PrometheusRule by default");
    let set = "prometheusRule.enabled=true,serviceMonitor.enabled=true,prometheusRule.labels.release=prom,prometheusRule.runbookUrl=https://wiki.example/winapp";
    let objects = documents(&rendered(&["--set", set]).expect("render"));
    let rule = only(&objects, "PrometheusRule");
    let service = objects.iter().find(|o| o["kind"] == "Service").expect("the metrics Service");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let expr = rule["spec"]["groups"][0]["rules"][0]["expr"].as_str().unwrap_or_default();
    let job = service["metadata"]["name"].as_str().unwrap_or_default();
    assert!(expr.contains(&format!("up{{job=\"{job}\",namespace=\"ns\"}}")), "{expr}");
    let spec = serde_json::to_string(&rule["spec"]).expect("json");
    assert!(!spec.contains("winapp-system") && !spec.contains("github.com"), "kustomize's values left: {spec}");
    for r in alerts(&rule["spec"]) {
        let anchor = r["alert"].as_str().unwrap_or_default().to_lowercase();
        assert_eq!(r["annotations"]["runbook_url"], format!("https://wiki.example/winapp#{anchor}"));
    }
    // Without the ServiceMonitor, the rules would find no target: refused unless told where.
    let err = rendered(&["--set", "prometheusRule.enabled=true"]).expect_err("rules without metrics");
    assert!(err.contains("set serviceMonitor.enabled=true, or prometheusRule.targetSelector"), "{err}");
    let objects = documents(
        &rendered(&[
            "--set",
            "prometheusRule.enabled=true",
            "--set-json",
            r#"prometheusRule.targetSelector="job=\"winapp\",namespace=~\"ops|platform\"""#,
        ])
        .expect("a target selector of one's own"),
    );
    let expr = only(&objects, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["expr"].clone();
    assert!(
        expr.as_str().unwrap_or_default().contains(r#"absent(up{job="winapp",namespace=~"ops|platform"})"#),
        "{expr}"
    );
}

#[test]
fn the_values_schema_takes_the_alert_and_dashboard_values() {
    let good = [
        "prometheusRule.enabled=true,serviceMonitor.enabled=true,grafanaDashboard.enabled=true",
        "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring,grafanaDashboard.annotations.grafana_folder=Platform",
        "prometheusRule.runbookUrl=http://wiki.internal/winapp",
    ];
    for set in good {
        template("t", "ns", &["--set", set]).unwrap_or_else(|e| panic!("--set {set} refused: {e}"));
    }
    let bad = [
        ("prometheusRule.enabled=maybe", "/prometheusRule/enabled"),
        ("prometheusRule.enable=true", "enable"),
        ("prometheusRule.targetSelector=job=winapp", "/prometheusRule/targetSelector"),
        ("prometheusRule.runbookUrl=wiki/winapp", "/prometheusRule/runbookUrl"),
        ("prometheusRule.runbookUrl=https://wiki.example/x#y", "/prometheusRule/runbookUrl"),
        ("prometheusRule.labels.release=1", "/prometheusRule/labels/release"),
        ("grafanaDashboard.enabled=yes", "/grafanaDashboard/enabled"),
        ("grafanaDashboard.namespace=Monitoring", "/grafanaDashboard/namespace"),
        ("grafanaDashboard.folder=x", "folder"),
    ];
    for (set, field) in bad {
        let err = template("t", "ns", &["--set", set]).expect_err(&format!("--set {set} was accepted"));
        assert!(err.contains("don't meet the specifications of the schema"), "--set {set}: {err}");
        assert!(err.contains(field), "--set {set}: the error does not name {field}: {err}");
    }
    let chart = root().join("charts/winapp-operator").to_string_lossy().into_owned();
    let all_on = "prometheusRule.enabled=true,serviceMonitor.enabled=true,grafanaDashboard.enabled=true";
    let out = run(alerts_support::helm_bin(), &["lint", &chart, "--strict", "--set", all_on], None)
        .unwrap_or_else(|e| panic!("helm lint: {e}"));
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

/// `spec` as a rules file in `dir` (JSON, which is YAML).
fn write_rules(dir: &std::path::Path, spec: &Value) {
    let json = serde_json::to_string_pretty(spec).expect("json");
    std::fs::write(dir.join("rules.yaml"), json).expect("write rules.yaml");
}

fn renders() -> [(&'static str, Value); 2] {
    [("kustomize", kustomize_rule()["spec"].clone()), ("the chart", chart_rule()["spec"].clone())]
}

#[test]
#[ignore = "needs promtool: scripts/test builds it (or set PROMTOOL)"]
fn promtool_checks_the_rules_as_kustomize_and_the_chart_render_them() {
    for (source, spec) in renders() {
        let dir = scratch("promtool-check");
        write_rules(&dir, &spec);
        let file = dir.join("rules.yaml").to_string_lossy().into_owned();
        let out = run(promtool_bin(), &["check", "rules", "--lint=all", "--lint-fatal", &file], None)
            .unwrap_or_else(|e| panic!("promtool check rules of {source}'s rules: {e}"));
        assert!(out.contains(&format!("SUCCESS: {} rules found", EXPECTED.len())), "{source}: {out}");
    }
    // It can fail: a rule whose expression does not parse.
    let dir = scratch("promtool-check-bad");
    let mut spec = component_spec();
    spec["groups"][0]["rules"][0]["expr"] = json!("max by (job (up)");
    write_rules(&dir, &spec);
    let file = dir.join("rules.yaml").to_string_lossy().into_owned();
    run(promtool_bin(), &["check", "rules", &file], None).expect_err("promtool accepted a broken expression");
}

/// Runs tests/alerts/ on `spec` (without the long prose: the unit tests compare the summaries).
fn unit_tests(spec: &Value) -> Result<String, String> {
    let mut spec = spec.clone();
    for group in spec["groups"].as_array_mut().expect("groups") {
        for rule in group["rules"].as_array_mut().expect("rules") {
            let annotations = rule["annotations"].as_object_mut().expect("annotations");
            annotations.remove("description");
            annotations.remove("runbook_url");
        }
    }
    let dir = scratch("promtool-test");
    write_rules(&dir, &spec);
    let mut files = Vec::new();
    for (alert, ..) in EXPECTED {
        let name = format!("{alert}.yaml");
        std::fs::copy(root().join("tests/alerts").join(&name), dir.join(&name)).expect("copy the test");
        files.push(dir.join(name).to_string_lossy().into_owned());
    }
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    run(promtool_bin(), &args, None)
}

#[test]
#[ignore = "needs promtool: scripts/test builds it (or set PROMTOOL)"]
fn promtool_unit_tests_pass_on_the_rules_as_kustomize_and_the_chart_render_them() {
    for (source, spec) in renders() {
        let out = unit_tests(&spec).unwrap_or_else(|e| panic!("promtool test rules on {source}'s rules: {e}"));
        assert_eq!(out.matches("SUCCESS").count(), EXPECTED.len(), "{source}: {out}");
    }
    // They can fail: an alert that waits longer than its tests expect.
    let mut spec = component_spec();
    spec["groups"][1]["rules"][0]["for"] = json!("20m");
    let err = unit_tests(&spec).expect_err("the unit tests passed a changed `for`");
    assert!(err.contains("WindowsAppsStalled"), "{err}");
}
