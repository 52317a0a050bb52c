//! "Already matches", in the API server's terms: [`first_difference`] compares what the operator
//! wants with what the server stores, quantities by value (`0.5` = `500m`, `1024Mi` = `1Gi`), and
//! empty values (`""`, `[]`, `{}`, `false`, `0`, `null`) equal to an absent field (Go's
//! `omitempty` drops them); fields the server adds (defaults) are ignored. Pure, with properties
//! tested on generated cases.

use serde_json::Value;

/// Objects whose values are resource quantities (`requests.cpu`, `capacity.storage`...).
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "capacity", "overhead"];
/// Fields that are quantities themselves.
const QUANTITY_FIELDS: &[&str] = &["sizeLimit"];

/// Whether two strings are the same quantity (`0.5` and `500m`, `1024Mi` and `1Gi`).
pub fn same_quantity(a: &str, b: &str) -> bool {
    a == b || matches!((crate::quantity::parse(a), crate::quantity::parse(b)), (Some(x), Some(y)) if x == y)
}

/// A value Go's `omitempty` drops, so the server stores it as an absent field.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
    }
}

/// The path of the first field of `want` that `have` holds with another value, in the API
/// server's terms (see the module docs); None when `want` is contained in `have`. Lists match
/// element by element and `have` may be longer (admission may append to lists we do not own).
pub fn first_difference(want: &Value, have: &Value) -> Option<String> {
    diff(want, have, false)
}

/// `quantity`: `want` and `have` are resource quantities.
fn diff(want: &Value, have: &Value, quantity: bool) -> Option<String> {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w.iter().find_map(|(k, v)| {
            let Some(hv) = h.get(k) else { return (!is_empty_value(v)).then(|| format!(".{k}")) };
            let sub = if QUANTITY_MAPS.contains(&k.as_str()) && v.is_object() {
                diff_quantity_map(v, hv)
            } else {
                diff(v, hv, QUANTITY_FIELDS.contains(&k.as_str()))
            };
            sub.map(|p| format!(".{k}{p}"))
        }),
        (Value::Array(w), Value::Array(h)) if w.len() <= h.len() => {
            w.iter().zip(h).enumerate().find_map(|(i, (a, b))| diff(a, b, false).map(|p| format!("[{i}]{p}")))
        }
        (w, h) if w == h => None,
        (w, Value::Null) if is_empty_value(w) => None,
        (Value::String(a), Value::String(b)) if quantity => (!same_quantity(a, b)).then(String::new),
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) if quantity => {
            (!same_quantity(&a.to_string(), b)).then(String::new)
        }
        _ => Some(String::new()),
    }
}

/// Compares two `{resource: quantity}` maps.
fn diff_quantity_map(want: &Value, have: &Value) -> Option<String> {
    let (Value::Object(w), Value::Object(h)) = (want, have) else { return diff(want, have, false) };
    w.iter().find_map(|(k, v)| match h.get(k) {
        Some(hv) => diff(v, hv, true).map(|p| format!(".{k}{p}")),
        None => (!is_empty_value(v)).then(|| format!(".{k}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_compare_by_value() {
        for (a, b) in [
            ("0.5", "500m"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1.5Gi"),
            ("1000", "1k"),
            ("1e3", "1k"),
            ("2", "2000m"),
            ("0", "0m"),
            ("100Gi", "100Gi"),
        ] {
            assert!(same_quantity(a, b), "{a} = {b}");
        }
        for (a, b) in [("1Gi", "1G"), ("500m", "0.4"), ("1", "1m"), ("ten gigs", "10Gi"), ("1Ki", "1k")] {
            assert!(!same_quantity(a, b), "{a} != {b}");
        }
    }

    #[test]
    fn the_server_normalised_form_is_no_difference() {
        let want = json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A", "value": ""}],
            "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}}}],
            "tolerations": [{"key": "os", "value": "", "operator": "Equal"}]}});
        let have = json!({"spec": {"containers": [{"name": "app", "env": [{"name": "A"}],
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}, "imagePullPolicy": "IfNotPresent"}],
            "tolerations": [{"key": "os", "operator": "Equal"}], "dnsPolicy": "ClusterFirst"}});
        assert_eq!(first_difference(&want, &have), None);
    }

    #[test]
    fn real_differences_are_found_with_their_path() {
        let want = json!({"spec": {"containers": [{"name": "app", "image": "a:1",
            "resources": {"limits": {"cpu": "1"}}}]}});
        let cases = [
            (
                json!({"spec": {"containers": [{"name": "app", "image": "a:2", "resources": {"limits": {"cpu": "1"}}}]}}),
                ".spec.containers[0].image",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "image": "a:1", "resources": {"limits": {"cpu": "900m"}}}]}}),
                ".spec.containers[0].resources.limits.cpu",
            ),
            (
                json!({"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "1"}}}]}}),
                ".spec.containers[0].image",
            ),
            (json!({"spec": {"containers": []}}), ".spec.containers"),
        ];
        for (have, path) in cases {
            assert_eq!(first_difference(&want, &have).as_deref(), Some(path), "{have}");
        }
        // Quantity semantics only where quantities live: an env value "1k" is not "1000".
        let want = json!({"env": [{"name": "N", "value": "1000"}]});
        let have = json!({"env": [{"name": "N", "value": "1k"}]});
        assert_eq!(first_difference(&want, &have).as_deref(), Some(".env[0].value"));
        // A non-empty value the server lacks is a difference.
        assert_eq!(first_difference(&json!({"a": "x"}), &json!({})).as_deref(), Some(".a"));
    }

    /// A small deterministic generator (xorshift), so that the properties below run on many
    /// generated cases without a dependency and fail reproducibly.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Spellings of `n` milli-units that the API server treats as the same quantity.
    fn spellings(milli: u64) -> Vec<String> {
        let mut out = vec![format!("{milli}m")];
        if milli.is_multiple_of(1000) {
            let units = milli / 1000;
            out.push(units.to_string());
            out.push(format!("{units}.0"));
            if units.is_multiple_of(1000) {
                out.push(format!("{}k", units / 1000));
                out.push(format!("{}e3", units / 1000));
            }
            for (suffix, pow) in [("Ki", 10), ("Mi", 20), ("Gi", 30)] {
                if units.is_multiple_of(1 << pow) {
                    out.push(format!("{}{suffix}", units >> pow));
                }
            }
        } else {
            let units = milli / 1000;
            let frac = format!("{:03}", milli % 1000);
            out.push(format!("{units}.{}", frac.trim_end_matches('0')));
        }
        out
    }

    #[test]
    fn property_every_spelling_of_a_quantity_is_the_same_and_another_value_differs() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let milli = match g.below(3) {
                0 => g.below(100_000),
                1 => (g.below(4096) + 1) * 1000 * (1 << (10 * g.below(4))),
                _ => (g.below(999) + 1) * 1_000_000,
            };
            let forms = spellings(milli);
            for a in &forms {
                for b in &forms {
                    assert!(same_quantity(a, b), "{a} = {b} ({milli}m)");
                }
            }
            let other = milli + g.below(999) + 1;
            assert!(!same_quantity(&forms[0], &format!("{other}m")), "{milli}m != {other}m");
        }
    }

    /// A random object tree with empty values sprinkled in.
    fn tree(g: &mut Gen, depth: u32) -> Value {
        let n = g.below(4) + 1;
        let mut m = serde_json::Map::new();
        for i in 0..n {
            let key = format!("k{i}");
            let v = match (g.below(7), depth) {
                (0, _) => json!(""),
                (1, _) => json!([]),
                (2, _) => json!(null),
                (3, _) => json!(false),
                (4, d) if d > 0 => tree(g, d - 1),
                (5, d) if d > 0 => json!([tree(g, d - 1), tree(g, d - 1)]),
                _ => json!(format!("v{}", g.below(1000))),
            };
            m.insert(key, v);
        }
        Value::Object(m)
    }

    /// What the API server stores for `v`: empty values dropped (Go's omitempty), plus a
    /// defaulted field of its own in every object.
    fn stored(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out: serde_json::Map<String, Value> =
                    m.iter().filter(|(_, x)| !is_empty_value(x)).map(|(k, x)| (k.clone(), stored(x))).collect();
                out.insert("zDefaulted".into(), json!("by the server"));
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(stored).collect()),
            other => other.clone(),
        }
    }

    /// Changes one non-empty string leaf; returns false when there is none.
    fn mutate(v: &mut Value, g: &mut Gen) -> bool {
        match v {
            Value::String(s) if !s.is_empty() => {
                s.push('!');
                true
            }
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let start = g.below(keys.len().max(1) as u64) as usize;
                (0..keys.len()).any(|i| m.get_mut(&keys[(start + i) % keys.len()]).is_some_and(|x| mutate(x, g)))
            }
            Value::Array(a) => a.iter_mut().any(|x| mutate(x, g)),
            _ => false,
        }
    }

    #[test]
    fn property_the_stored_form_of_any_object_is_no_difference_and_a_real_change_is() {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        for _ in 0..3000 {
            let want = tree(&mut g, 3);
            let have = stored(&want);
            assert_eq!(first_difference(&want, &have), None, "{want} vs {have}");
            let mut changed = want.clone();
            if mutate(&mut changed, &mut g) {
                assert!(first_difference(&changed, &have).is_some(), "{changed} vs {have}");
            }
        }
    }
}
