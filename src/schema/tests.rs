use serde_json::{Value, json};

use super::*;

fn app(spec: Value) -> Value {
    json!({"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "metadata": {"name": "web"}, "spec": spec})
}

/// The errors as `path: message` lines.
fn errors(doc: &Value) -> Vec<String> {
    match check(doc) {
        Ok(()) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(doc: &Value) -> String {
    let e = errors(doc);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.into_iter().next().unwrap_or_default()
}

#[test]
fn the_crd_schema_compiles_with_every_keyword_known() {
    self_check().expect("the CRD schema compiles");
}

#[test]
fn a_minimal_app_passes() {
    assert_eq!(errors(&app(json!({"image": "iis:ltsc2022"}))), Vec::<String>::new());
}

#[test]
fn unknown_fields_at_every_depth_name_the_closest_field() {
    let e = one_error(&app(json!({"image": "x", "windows": {"versoin": "ltsc2022"}})));
    assert!(e.starts_with("spec.windows.versoin: unknown field; did you mean \"version\"?"), "{e}");
    let e = one_error(&app(json!({"image": "x", "replica": 2})));
    assert!(e.starts_with("spec.replica: unknown field; did you mean \"replicas\"?"), "{e}");
    let e = one_error(&app(
        json!({"image": "x", "volumes": [{"name": "d", "mountPath": "C:\\d", "claim": {"size": "1Gi", "storageclass": "x"}}]}),
    ));
    assert!(
        e.starts_with("spec.volumes[0].claim.storageclass: unknown field; did you mean \"storageClassName\"?"),
        "{e}"
    );
    // Core types too (probes are core/v1 Probe).
    let e = one_error(&app(json!({"image": "x", "probes": {"liveness": {"httpGet": {"paht": "/", "port": 80}}}})));
    assert!(e.starts_with("spec.probes.liveness.httpGet.paht: unknown field; did you mean \"path\"?"), "{e}");
    let e = one_error(
        &json!({"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "metadata": {"name": "web"}, "spec": {"image": "x"}, "sepc": {}}),
    );
    assert!(e.starts_with("sepc: unknown field; did you mean \"spec\"?"), "{e}");
    let e = one_error(
        &json!({"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "metadata": {"name": "web", "lables": {}}, "spec": {"image": "x"}}),
    );
    assert!(e.starts_with("metadata.lables: unknown field; did you mean \"labels\"?"), "{e}");
}

#[test]
fn preserved_fields_are_not_unknown_but_typed_ones_are_checked() {
    assert!(errors(&app(json!({"image": "x", "podTemplate": {"spec": {"anything": {"at": ["all"]}}}}))).is_empty());
    let e = one_error(&app(json!({"image": "x", "podTemplate": {"spec": {"hostNetwork": "yes please"}}})));
    assert!(e.starts_with("spec.podTemplate.spec.hostNetwork: must be a boolean"), "{e}");
    let e = one_error(&app(json!({"image": "x", "podTemplate": {"metadata": {"label": {}}}})));
    assert!(e.starts_with("spec.podTemplate.metadata.label: unknown field; did you mean \"labels\"?"), "{e}");
}

#[test]
fn wrong_types_say_how_to_write_the_value() {
    let e = one_error(&app(json!({"image": "x", "replicas": "three"})));
    assert!(e.starts_with("spec.replicas: must be an integer (32-bit), not a string (three)"), "{e}");
    let e = one_error(&app(json!({"image": "x", "replicas": "3"})));
    assert!(e.contains("write the number without quotes"), "{e}");
    let e = one_error(&app(json!({"image": 5})));
    assert!(e.contains("quote it: \"5\""), "{e}");
    let e = one_error(&app(json!({"image": "x", "rollout": {"maxSurge": 1.5}})));
    assert!(e.starts_with("spec.rollout.maxSurge: must be an integer or a string"), "{e}");
    let e = one_error(&app(json!({"image": "x", "command": ["a", null]})));
    assert!(e.starts_with("spec.command[1]: must be a string, not null"), "{e}");
    let e = one_error(&app(json!({"image": "x", "ports": {"name": "http"}})));
    assert!(e.starts_with("spec.ports: must be a list, not an object"), "{e}");
}

#[test]
fn nulls_count_as_absent_unless_nullable() {
    assert!(errors(&app(json!({"image": "x", "replicas": null, "windows": null, "ports": null}))).is_empty());
    assert!(errors(&app(json!({"image": "x", "windows": {"nodeSelector": {"a": null}}}))).is_empty());
    assert_eq!(one_error(&app(json!({"image": null}))), "spec.image: required; add it");
    let mut doc = app(json!({"image": "x", "windows": null, "gmsa": null}));
    normalize(&mut doc);
    assert_eq!(doc["spec"], json!({"image": "x", "windows": {}, "gmsa": null}), "windows defaults to {{}}");
}

#[test]
fn required_fields() {
    assert_eq!(one_error(&app(json!({}))), "spec.image: required; add it");
    let e = errors(&app(json!({"image": "x", "ports": [{"name": "http"}]})));
    assert_eq!(e, vec!["spec.ports[0].containerPort: required; add it"]);
    let e = errors(&json!({"apiVersion": "winapp.dev/v1alpha1", "kind": "WindowsApp", "metadata": {"name": "a"}}));
    assert_eq!(e, vec!["spec: required; add it"]);
}

#[test]
fn enums_suggest_the_closest_value() {
    let e = one_error(&app(json!({"image": "x", "windows": {"version": "ltsc2023"}})));
    assert!(e.starts_with("spec.windows.version: ltsc2023 is not one of ltsc2019, ltsc2022, ltsc2025"), "{e}");
    let e = one_error(&app(json!({"image": "x", "imagePullPolicy": "always"})));
    assert!(e.contains("did you mean Always?"), "{e}");
}

#[test]
fn ranges_and_formats() {
    let e = one_error(&app(json!({"image": "x", "replicas": -1})));
    assert_eq!(e, "spec.replicas: -1 is below the minimum 0; use a value of at least 0");
    let e = one_error(&app(json!({"image": "x", "ports": [{"name": "http", "containerPort": 70000}]})));
    assert!(e.starts_with("spec.ports[0].containerPort: 70000 is above the maximum 65535"), "{e}");
    let e = one_error(&app(
        json!({"image": "x", "autoscaled": false, "probes": {"liveness": {"exec": {"command": ["a"]}, "periodSeconds": 3_000_000_000_i64}}}),
    ));
    assert!(e.starts_with("spec.probes.liveness.periodSeconds: 3000000000 is out of range for int32"), "{e}");
}

#[test]
fn lengths_patterns_and_counts() {
    let e = one_error(&app(json!({"image": ""})));
    assert!(e.starts_with("spec.image: is 0 characters long, at least 1 needed; set a value"), "{e}");
    let e = one_error(&app(json!({"image": "x", "ports": [{"name": "a-very-long-port-name", "containerPort": 80}]})));
    assert!(e.starts_with("spec.ports[0].name: is 21 characters long, at most 15 allowed"), "{e}");
    let e = one_error(&app(
        json!({"image": "x", "volumes": [{"name": "d", "mountPath": "C:\\d", "smb": {"source": "\\\\srv\\share", "secretRef": {"name": "c"}}}]}),
    ));
    assert!(e.starts_with(r#"spec.volumes[0].smb.source: "\\\\srv\\share" does not match the pattern ^//"#), "{e}");
    // Lengths count characters, not bytes.
    assert!(errors(&app(json!({"image": "x", "gmsa": {"credentialSpec": {"account": "ääääääääääääää", "domain": {"dnsName": "c.com", "netBiosName": "C", "sid": "S-1-5-21-1-2-3", "guid": "244818ae-87ac-4fcd-92ec-e79e5252348a"}}}}))).is_empty());
    let volumes: Vec<Value> = (0..17)
        .map(|i| json!({"name": format!("v{i}"), "mountPath": format!("C:\\v{i}"), "claim": {"size": "1Gi"}}))
        .collect();
    let e = one_error(&app(json!({"image": "x", "volumes": volumes})));
    assert_eq!(e, "spec.volumes: has 17 entries, at most 16 allowed; remove 1 of them");
}

#[test]
fn list_map_keys_are_unique() {
    let e = one_error(&app(
        json!({"image": "x", "ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]}),
    ));
    assert!(e.starts_with("spec.ports[1]: duplicate entry name=\"http\""), "{e}");
}

#[test]
fn cel_rules_run_when_the_rest_passed() {
    let e = one_error(&app(json!({"image": "x", "gmsa": {}})));
    assert!(e.starts_with("spec.gmsa: set exactly one of gmsa.credentialSpecName"), "{e}");
    let e = one_error(&app(json!({"image": "x", "hostProcess": {}, "podTemplate": {"spec": {"hostNetwork": false}}})));
    assert!(e.starts_with("spec.podTemplate.spec.hostNetwork: hostProcess requires host networking"), "{e}");
    let e = one_error(&app(
        json!({"image": "x", "volumes": [{"name": "winapp-x", "mountPath": "C:\\d", "claim": {"size": "1Gi"}}]}),
    ));
    assert!(e.starts_with("spec.volumes[0].name: volume names starting with 'winapp-' are reserved"), "{e}");
    let e = one_error(&app(
        json!({"image": "x", "config": {"mountPath": "C:\\app\\", "files": [{"name": "a", "content": "b"}]}}),
    ));
    assert!(e.starts_with("spec.config.mountPath: must be an absolute Windows path"), "{e}");
    let mut doc = app(json!({"image": "x"}));
    doc["metadata"]["name"] = json!("Web_App");
    let e = one_error(&doc);
    assert!(e.starts_with("metadata.name: metadata.name must be a DNS-1035 label"), "{e}");
    // Not checked while the structure is wrong (as the API server does).
    assert_eq!(errors(&app(json!({"image": 1, "gmsa": {}}))).len(), 1);
    // A nullable field set to null is absent for has().
    assert!(errors(&app(json!({"image": "x", "hostProcess": {}, "gmsa": null}))).is_empty());
}

#[test]
fn transition_rules_are_skipped_without_an_old_object() {
    assert!(errors(&app(json!({"image": "x", "volumes": [{"name": "d", "mountPath": "C:\\d", "smb": {"source": "//s/x", "secretRef": {"name": "c"}}}]}))).is_empty());
}

#[test]
fn status_is_dropped_but_its_unknown_fields_are_refused() {
    let mut doc = app(json!({"image": "x"}));
    doc["status"] = json!({"observedGeneration": "not a number"});
    assert!(errors(&doc).is_empty());
    doc["status"] = json!({"foo": 1});
    assert!(one_error(&doc).starts_with("status.foo: unknown field"));
}

#[test]
fn field_paths_print_as_kubectl_shows_them() {
    let p = FieldPath::default().join("metadata").join("labels").join("app.kubernetes.io/name");
    assert_eq!(p.to_string(), r#"metadata.labels["app.kubernetes.io/name"]"#);
    assert_eq!(FieldPath::default().join("spec").join("ports").index(2).join("name").to_string(), "spec.ports[2].name");
    assert_eq!(
        FieldPath::default().join("spec").extend_with(".podTemplate.spec['host.x'][1]").to_string(),
        r#"spec.podTemplate.spec["host.x"][1]"#
    );
}

#[test]
fn closest_names() {
    assert_eq!(closest("versoin", ["version", "toleration"]), Some("version".into()));
    assert_eq!(closest("replica", ["replicas", "resources"]), Some("replicas".into()));
    assert_eq!(closest("IMAGE", ["image"]), Some("image".into()));
    assert_eq!(closest("zzz", ["image", "replicas"]), None);
}

/// The checker on a schema of its own, for keywords the WindowsApp CRD does not use (yet).
fn synthetic(schema: Value, value: Value) -> Vec<String> {
    let node = compile::compile(&schema, "").expect("compiles");
    let mut errors = Vec::new();
    check_node(&node, &value, &FieldPath::default().join("x"), &mut errors, Mode::Full);
    if errors.is_empty() {
        check_rules(&node, &value, &FieldPath::default().join("x"), &mut errors, false);
    }
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn embedded_resources_allow_their_type_and_check_their_metadata() {
    let schema = json!({"type": "object", "x-kubernetes-embedded-resource": true,
        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}});
    assert!(
        synthetic(
            schema.clone(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "spec": {"a": "b"}})
        )
        .is_empty()
    );
    let e = synthetic(schema, json!({"apiVersion": "v1", "metadata": {"nmae": "c"}, "data": {}}));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with("x.data: unknown field"), "{e:#?}");
    assert!(e[1].starts_with("x.metadata.nmae: unknown field; did you mean \"name\"?"), "{e:#?}");
}

#[test]
fn maps_sets_bounds_and_counts() {
    let map = json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}, "maxProperties": 2, "minProperties": 1});
    assert!(synthetic(map.clone(), json!({"a": 1, "b": 2})).is_empty());
    let e = synthetic(map.clone(), json!({"a": 0, "b": 2, "c": 3}));
    assert_eq!(
        e,
        vec!["x.a: 0 is at or below 0; use a value of more than 0", "x: has 3 keys, at most 2 allowed; remove some"]
    );
    assert_eq!(synthetic(map, json!({})), vec!["x: has 0 keys, at least 1 needed; add more"]);
    let set = json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}, "minItems": 1});
    assert_eq!(
        synthetic(set.clone(), json!(["a", "b", "a"])),
        vec![
            "x[2]: duplicate entry \"a\" (entries of this list are identified by it); give each entry its own or remove the duplicate"
        ]
    );
    assert_eq!(synthetic(set, json!([])), vec!["x: has 0 entries, at least 1 needed; add more"]);
    let num = json!({"type": "number", "maximum": 1.5, "multipleOf": 0.5});
    assert_eq!(synthetic(num.clone(), json!(1.0)), Vec::<String>::new());
    assert_eq!(
        synthetic(num, json!(1.75)),
        vec![
            "x: 1.75 is above the maximum 1.5; use a value of at most 1.5",
            "x: 1.75 is not a multiple of 0.5; use a multiple of it"
        ]
    );
    let time = json!({"type": "string", "format": "date-time"});
    assert!(synthetic(time.clone(), json!("2024-01-31T12:00:00Z")).is_empty());
    assert_eq!(synthetic(time, json!("yesterday")).len(), 1);
}

#[test]
fn rules_without_a_message_and_rules_that_cannot_be_evaluated() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "x-kubernetes-validations": [{"rule": "self.a > 1"}]});
    assert_eq!(
        synthetic(schema.clone(), json!({"a": 1})),
        vec!["x: failed rule: self.a > 1; change the value so that it holds"]
    );
    let e = synthetic(schema, json!({}));
    assert!(e[0].starts_with("x: the rule \"self.a > 1\" could not be checked"), "{e:#?}");
}

#[test]
fn unknown_keywords_fail_compilation() {
    assert!(compile::compile(&json!({"type": "object", "oneOf": []}), "").is_err());
    assert!(compile::compile(&json!({"x-kubernetes-validations": [{"rule": "self >"}]}), "").is_err());
}

#[test]
fn disruption_budgets_that_allow_no_eviction_are_refused_by_the_schema() {
    let refused = [
        (json!({"maxUnavailable": 0}), "spec.disruption.maxUnavailable: maxUnavailable must be at least 1"),
        (json!({"maxUnavailable": "0%"}), "spec.disruption.maxUnavailable: maxUnavailable must be at least 1"),
        (json!({"maxUnavailable": -1}), "spec.disruption.maxUnavailable: maxUnavailable must be at least 1"),
        (json!({"minAvailable": "100%"}), "spec.disruption.minAvailable: minAvailable must be below 100%"),
        (json!({"maxUnavailable": 1, "minAvailable": 1}), "spec.disruption.minAvailable: set one of"),
        (json!({"enabled": false, "maxUnavailable": 1}), "spec.disruption.enabled: enabled: false means"),
    ];
    for (disruption, want) in refused {
        let e = one_error(&app(json!({"image": "x", "replicas": 3, "disruption": disruption})));
        assert!(e.starts_with(want), "{disruption}: {e}");
    }
    let e = one_error(&app(json!({"image": "x", "nodeAgent": true, "disruption": {"minAvailable": 1}})));
    assert!(e.starts_with("spec.disruption: a nodeAgent gets no PodDisruptionBudget"), "{e}");
    for fine in [json!({"maxUnavailable": "25%"}), json!({"minAvailable": 2}), json!({"enabled": false}), json!({})] {
        assert_eq!(errors(&app(json!({"image": "x", "replicas": 3, "disruption": fine}))), Vec::<String>::new());
    }
    assert_eq!(
        errors(&app(json!({"image": "x", "nodeAgent": true, "disruption": {"enabled": false}}))),
        Vec::<String>::new()
    );
}
