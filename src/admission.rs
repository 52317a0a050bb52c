//! What the API server would refuse of the children that build produced, checked offline: the
//! rules that the WindowsApp's schema cannot see because the pod-template escape hatch and the
//! operator's defaults decide them. ConfigMap size, quantities, requests over limits, containers,
//! probe handlers, rolling update limits.
//!
//! Each error names the child and its field, and where known the WindowsApp field it comes from.

use serde_json::Value;
use thiserror::Error;

use crate::build::meta::CONTAINER_NAME;
use crate::schema::FieldPath;

/// `MaxConfigMapSize`: the data and binaryData of a ConfigMap together.
pub const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

/// One child the API server would refuse.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{object}: {path}: {problem}")]
pub struct ChildError {
    /// `Kind namespace/name` of the child.
    pub object: String,
    /// The field of the child.
    pub path: FieldPath,
    pub problem: String,
    /// The WindowsApp field it comes from, when known.
    pub origin: Option<FieldPath>,
}

fn spec() -> FieldPath {
    FieldPath::default().join("spec")
}

/// Checks every child (as the JSON `to_ordered_json` gives). `app` is the WindowsApp document,
/// used to name the field an error comes from.
pub fn check(children: &[Value], app: &Value) -> Vec<ChildError> {
    let mut errors = Vec::new();
    for child in children {
        let kind = child.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = child.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let object = match child.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let mut push = |path: FieldPath, problem: String, source: Option<FieldPath>| {
            errors.push(ChildError { object: object.clone(), path, problem, origin: source })
        };
        match kind {
            "ConfigMap" => check_config_map(child, &mut push),
            "Deployment" => check_deployment(child, app, &mut push),
            "PersistentVolume" => {
                let path = FieldPath::default().join("spec").join("capacity");
                check_quantities(child.pointer("/spec/capacity"), &path, app, &mut push, false);
            }
            "PersistentVolumeClaim" => {
                let path = FieldPath::default().join("spec").join("resources").join("requests");
                check_quantities(child.pointer("/spec/resources/requests"), &path, app, &mut push, false);
            }
            _ => {}
        }
    }
    errors
}

type Push<'a> = dyn FnMut(FieldPath, String, Option<FieldPath>) + 'a;

fn check_config_map(cm: &Value, push: &mut Push<'_>) {
    let mut total = 0;
    for field in ["data", "binaryData"] {
        if let Some(map) = cm.get(field).and_then(Value::as_object) {
            for (k, v) in map {
                total += k.len() + v.as_str().map_or(0, str::len);
            }
        }
    }
    if total > MAX_CONFIG_MAP_BYTES {
        push(
            FieldPath::default().join("data"),
            format!(
                "the config files take {total} bytes, more than the {MAX_CONFIG_MAP_BYTES} bytes (1 MiB) a ConfigMap may hold; shrink them, or keep large files in a Secret (secretRef) or in the image"
            ),
            Some(spec().join("config").join("files")),
        );
    }
}

fn check_deployment(d: &Value, app: &Value, push: &mut Push<'_>) {
    let pod = FieldPath::default().join("spec").join("template").join("spec");
    let overrides = spec().join("podTemplate").join("spec");
    match d.pointer("/spec/template/spec/containers").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => {}
        _ => push(
            pod.join("containers"),
            "the pod has no container (the API server requires at least one); remove the override of containers in spec.podTemplate.spec".into(),
            Some(overrides.join("containers")),
        ),
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = d.pointer(&format!("/spec/template/spec/{list}")).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in containers.iter().enumerate() {
            let here = pod.join(list).index(i);
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("");
            let ours = list == "containers" && cname == CONTAINER_NAME;
            let source_of = |field: &str| {
                if ours { Some(spec().join(field)) } else { Some(override_entry(app, list, cname).join(field)) }
            };
            if c.get("image").and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                push(here.join("image"), format!("container {cname:?} has no image; give it one"), source_of("image"));
            }
            check_resources(c, &here, app, ours, push);
            for (probe, spec_name) in
                [("livenessProbe", "liveness"), ("readinessProbe", "readiness"), ("startupProbe", "startup")]
            {
                let Some(p) = c.get(probe).filter(|p| !p.is_null()) else { continue };
                if list == "initContainers" {
                    continue;
                }
                let source = if ours { Some(spec().join("probes").join(spec_name)) } else { source_of(probe) };
                let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
                    .into_iter()
                    .filter(|h| p.get(*h).is_some_and(|v| !v.is_null()))
                    .collect();
                if handlers.len() != 1 {
                    let what = if handlers.is_empty() {
                        "no handler".to_owned()
                    } else {
                        format!("{} handlers ({})", handlers.len(), handlers.join(", "))
                    };
                    push(
                        here.join(probe),
                        format!("the probe has {what}; give it exactly one of exec, httpGet, tcpSocket and grpc"),
                        source.clone(),
                    );
                }
                if probe != "readinessProbe"
                    && let Some(n) = p.get("successThreshold").and_then(Value::as_i64)
                    && n != 1
                {
                    push(
                        here.join(probe).join("successThreshold"),
                        format!("is {n}; liveness and startup probes must have successThreshold 1 (or leave it unset)"),
                        source.map(|s| s.join("successThreshold")),
                    );
                }
            }
        }
    }
    check_rolling_update(d, push);
}

/// The field of the WindowsApp's pod-template override that names this container.
fn override_entry(app: &Value, list: &str, name: &str) -> FieldPath {
    let base = spec().join("podTemplate").join("spec").join(list);
    let index = app
        .pointer(&format!("/spec/podTemplate/spec/{list}"))
        .and_then(Value::as_array)
        .and_then(|items| items.iter().position(|i| i.get("name").and_then(Value::as_str) == Some(name)));
    match index {
        Some(i) => base.index(i),
        None => base,
    }
}

fn check_resources(c: &Value, here: &FieldPath, app: &Value, ours: bool, push: &mut Push<'_>) {
    let Some(resources) = c.get("resources") else { return };
    for kind in ["limits", "requests"] {
        check_quantities(resources.get(kind), &here.join("resources").join(kind), app, push, ours);
    }
    // A request may not exceed its limit.
    let (Some(limits), Some(requests)) =
        (resources.get("limits").and_then(Value::as_object), resources.get("requests").and_then(Value::as_object))
    else {
        return;
    };
    for (res, req) in requests {
        let (Some(req), Some(lim)) =
            (req.as_str().map(str::to_owned).or_else(|| Some(req.to_string())), limits.get(res))
        else {
            continue;
        };
        let lim = lim.as_str().map(str::to_owned).unwrap_or_else(|| lim.to_string());
        if crate::quantity::compare(&req, &lim) == Some(std::cmp::Ordering::Greater) {
            push(
                here.join("resources").join("requests").join(res),
                format!("the request {req} is more than the limit {lim}; lower the request or raise the limit"),
                ours.then(|| spec().join("resources").join("requests").join(res)),
            );
        }
    }
}

/// Each value of a resource map must be a quantity (`500m`, `1Gi`, `2`), not negative.
fn check_quantities(map: Option<&Value>, path: &FieldPath, app: &Value, push: &mut Push<'_>, ours: bool) {
    let Some(map) = map.and_then(Value::as_object) else { return };
    for (res, v) in map {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        let problem = match crate::quantity::parse(&text) {
            None => Some(format!(
                "{text:?} is not a quantity; write a number with an optional suffix, such as 500m, 2, 512Mi or 10Gi"
            )),
            Some((n, _)) if n < 0 => Some(format!("{text:?} is negative; use 0 or more")),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let source = match (ours, path.0.last()) {
                (true, Some(crate::schema::Step::Key(kind))) => Some(spec().join("resources").join(kind).join(res)),
                _ => find_string(app.get("spec"), &text, &spec()),
            };
            push(path.join(res), problem, source);
        }
    }
}

/// The path of the first string equal to `needle` under `v`.
fn find_string(v: Option<&Value>, needle: &str, path: &FieldPath) -> Option<FieldPath> {
    match v? {
        Value::String(s) if s == needle => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, x)| find_string(Some(x), needle, &path.index(i))),
        Value::Object(map) => map.iter().find_map(|(k, x)| find_string(Some(x), needle, &path.join(k))),
        _ => None,
    }
}

fn check_rolling_update(d: &Value, push: &mut Push<'_>) {
    let Some(ru) = d.pointer("/spec/strategy/rollingUpdate") else { return };
    let path = FieldPath::default().join("spec").join("strategy").join("rollingUpdate");
    let source = spec().join("rollout");
    let mut values = [None, None];
    for (i, field) in ["maxSurge", "maxUnavailable"].into_iter().enumerate() {
        match ru.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if v >= 0 => values[i] = Some(v),
                _ => push(path.join(field), format!("{n} is negative; use 0 or more"), Some(source.join(field))),
            },
            Some(Value::String(s)) => {
                match s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                    Some(digits) => {
                        let v: i64 = digits.parse().unwrap_or(i64::MAX);
                        if field == "maxUnavailable" && v > 100 {
                            push(
                                path.join(field),
                                format!("{s} is more than 100%; use at most 100%"),
                                Some(source.join(field)),
                            );
                        }
                        values[i] = Some(v);
                    }
                    None => push(
                        path.join(field),
                        format!(
                            "{s:?} is neither a number nor a percentage; write a number such as 1 or a percentage such as 25%"
                        ),
                        Some(source.join(field)),
                    ),
                }
            }
            Some(other) => {
                push(path.join(field), format!("{other} is not a number or a percentage"), Some(source.join(field)))
            }
        }
    }
    if values == [Some(0), Some(0)] {
        push(
            path.join("maxUnavailable"),
            "maxSurge and maxUnavailable are both 0, so a rollout could never make progress; raise one of them (spec.rollout)".into(),
            Some(source),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(pod: Value, strategy: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"strategy": {"rollingUpdate": strategy}, "template": {"spec": pod}}})
    }

    fn problems(children: &[Value]) -> Vec<String> {
        check(children, &json!({"spec": {"resources": {"limits": {"cpu": "ten"}}}}))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_deployment_passes() {
        let c = json!({"name": CONTAINER_NAME, "image": "x", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": 1}},
            "livenessProbe": {"tcpSocket": {"port": 80}}});
        assert_eq!(
            problems(&[deployment(json!({"containers": [c]}), json!({"maxSurge": "25%", "maxUnavailable": 0}))]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn what_the_api_server_refuses() {
        let c = json!({"name": CONTAINER_NAME, "image": "x", "resources": {"limits": {"cpu": "ten", "memory": "1Gi"}, "requests": {"memory": "2Gi"}},
            "livenessProbe": {"periodSeconds": 3}, "startupProbe": {"exec": {"command": ["a"]}, "tcpSocket": {"port": 1}, "successThreshold": 2}});
        let e = problems(&[deployment(json!({"containers": [c]}), json!({"maxSurge": 0, "maxUnavailable": "0%"}))]);
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(e[0].contains("limits.cpu: \"ten\" is not a quantity"), "{}", e[0]);
        let all = check(&[deployment(json!({"containers": [c]}), json!({}))], &json!({}));
        assert_eq!(all[0].origin.as_ref().map(ToString::to_string).as_deref(), Some("spec.resources.limits.cpu"));
        assert!(e[1].contains("requests.memory: the request 2Gi is more than the limit 1Gi"), "{}", e[1]);
        assert!(e[2].contains("livenessProbe: the probe has no handler"), "{}", e[2]);
        assert!(e[3].contains("startupProbe: the probe has 2 handlers (exec, tcpSocket)"), "{}", e[3]);
        assert!(e[4].contains("successThreshold: is 2"), "{}", e[4]);
        assert!(e[5].contains("both 0"), "{}", e[5]);
        let e = problems(&[deployment(json!({"containers": []}), json!({}))]);
        assert!(
            e[0].starts_with("Deployment shop/web: spec.template.spec.containers: the pod has no container"),
            "{e:?}"
        );
    }

    #[test]
    fn config_maps_hold_at_most_one_mebibyte() {
        let big = "x".repeat(MAX_CONFIG_MAP_BYTES);
        let e = problems(&[
            json!({"kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"a": big}}),
        ]);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("more than the 1048576 bytes"), "{e:?}");
    }

    #[test]
    fn quantities_of_storage() {
        let pvc = json!({"kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {"resources": {"requests": {"storage": "ten gigs"}}}});
        let app = json!({"spec": {"volumes": [{"name": "d", "claim": {"size": "ten gigs"}}]}});
        let e = check(&[pvc], &app);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].origin.as_ref().map(ToString::to_string).as_deref(), Some("spec.volumes[0].claim.size"));
    }
}
