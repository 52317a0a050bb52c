//! Step 1 of a reconcile: whether the app may be applied at all. First the CRD's schema and CEL
//! rules, as `render` checks them (an app stored while the CRD was looser meets them only here),
//! then the operator's own rules and the pod template policy. Pure.

use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::status::Outcome;
use crate::api::WindowsApp;
use crate::build::meta::AppKey;
use crate::conditions::reason;
use crate::policy::Policy;
use crate::schema;
use crate::validate::{self, ValidatedApp};

/// Why nothing may be applied for an app, with the message that names each field.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// `InvalidSpec`: the CRD's schema, or the operator's own rules.
    Invalid(String),
    /// `NotAllowed`: only the platform's policy stands in the way, and it refuses a field of the
    /// spec that reaches beyond the namespace (HostProcess, nodeAgent, tolerations, ...).
    NotAllowed(String),
    /// `OverrideNotAllowed`: only the policy stands in the way, and only for `spec.podTemplate`.
    OverrideNotAllowed(String),
}

impl Refusal {
    /// A policy refusal that also names the entries of the Namespace's grant annotations that
    /// could not be read (a typo in a rule name must not look like a refusal without a cause).
    pub fn noting_unreadable(self, namespace: &str, unreadable: &[String]) -> Refusal {
        if unreadable.is_empty() {
            return self;
        }
        let note = format!(
            "; note: the Namespace {namespace} has grant entries that are not rules or taints ({}): check their spelling",
            unreadable.join(", ")
        );
        match self {
            Refusal::NotAllowed(m) => Refusal::NotAllowed(m + &note),
            Refusal::OverrideNotAllowed(m) => Refusal::OverrideNotAllowed(m + &note),
            other => other,
        }
    }
}

impl Refusal {
    /// The refusal with `note` (what the operator did about it) added to its message.
    pub fn noting(self, note: Option<String>) -> Refusal {
        let Some(note) = note else { return self };
        match self {
            Refusal::Invalid(m) => Refusal::Invalid(format!("{m}; {note}")),
            Refusal::NotAllowed(m) => Refusal::NotAllowed(format!("{m}; {note}")),
            Refusal::OverrideNotAllowed(m) => Refusal::OverrideNotAllowed(format!("{m}; {note}")),
        }
    }
}

impl From<Refusal> for Outcome {
    fn from(r: Refusal) -> Outcome {
        match r {
            Refusal::Invalid(m) => Outcome::Invalid(m),
            Refusal::NotAllowed(m) => Outcome::NotAllowed { reason: reason::NOT_ALLOWED, message: m },
            Refusal::OverrideNotAllowed(m) => Outcome::NotAllowed { reason: reason::OVERRIDE_NOT_ALLOWED, message: m },
        }
    }
}

/// Why an app was refused, with the platform's policy it was judged by.
#[derive(Debug)]
pub struct Refused {
    refusal: Refusal,
    /// The operator's grants and the app's Namespace's.
    pub policy: Policy,
    /// The Namespace's grant entries that could not be read.
    unreadable: Vec<String>,
    namespace: String,
}

impl Refused {
    /// The status outcome, with what the operator did about the refusal (a workload removed).
    pub fn outcome(self, withdrawn: Option<String>) -> Outcome {
        self.refusal.noting_unreadable(&self.namespace, &self.unreadable).noting(withdrawn).into()
    }
}

/// Admits the app `key` as the operator has it: judged by the platform's policy for its
/// namespace (the operator's grants and the Namespace's), the schema check skipped when it
/// passed for the same signature before.
pub fn admit_cached(ctx: &Context, app: &WindowsApp, key: &AppKey) -> Result<ValidatedApp, Box<Refused>> {
    let signature = schema_signature(app);
    let passed = ctx.memory.read(key, |s| s.schema_passed == Some(signature)).unwrap_or(false);
    let schema = if passed { SchemaCheck::PassedUnchanged } else { SchemaCheck::Run };
    let namespace = ctx.stores.namespaces.get(&ObjectRef::new(&key.0));
    let annotations = namespace.map(|n| kube::ResourceExt::annotations(n.as_ref()).clone()).unwrap_or_default();
    let granted = ctx.settings.policy.for_namespace(&annotations);
    match admit_with(app, &granted.policy, schema) {
        Ok(valid) => {
            ctx.memory.with(key, |s| s.schema_passed = Some(signature));
            Ok(valid)
        }
        Err(refusal) => Err(Box::new(Refused {
            refusal,
            policy: granted.policy,
            unreadable: granted.unreadable,
            namespace: key.0.clone(),
        })),
    }
}

/// The validated app, or why nothing may be applied for it. Schema errors come alone, as in
/// `render`: the operator's rules assume a spec that meets the schema.
pub fn admit(app: &WindowsApp, policy: &Policy) -> Result<ValidatedApp, Refusal> {
    admit_with(app, policy, SchemaCheck::Run)
}

/// Whether the schema check runs: it is the costly part of admitting (0.1 to 0.5 ms in a release
/// build, against microseconds for the operator's rules), and its answer changes only with what
/// it checks: the caller may skip it for an app it has seen pass unchanged ([`schema_signature`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaCheck {
    Run,
    PassedUnchanged,
}

/// [`admit`], with the schema check skipped when the caller knows it passed.
pub fn admit_with(app: &WindowsApp, policy: &Policy, schema: SchemaCheck) -> Result<ValidatedApp, Refusal> {
    if schema == SchemaCheck::Run
        && let Err(errors) = schema::check_stored(app)
    {
        return Err(Refusal::Invalid(errors.to_string()));
    }
    validate::validate_with(app, None, policy).map_err(|errors| {
        if errors.only_policy_refusals() && errors.refuses_spec_fields() {
            Refusal::NotAllowed(errors.to_string())
        } else if errors.only_policy_refusals() {
            Refusal::OverrideNotAllowed(errors.to_string())
        } else {
            Refusal::Invalid(errors.to_string())
        }
    })
}

/// Hash of everything the schema check reads: the spec (by its generation, which the API server
/// bumps on every spec change), the names, labels and annotations, and the UID (a new object of
/// the same name is checked afresh).
pub fn schema_signature(app: &WindowsApp) -> u64 {
    use std::hash::{Hash, Hasher};
    let m = &app.metadata;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&m.uid, m.generation, &m.name, &m.generate_name, &m.namespace, &m.labels, &m.annotations).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str) -> WindowsApp {
        serde_saphyr::from_str(yaml).expect("a WindowsApp")
    }

    const HEAD: &str = "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {name: web, namespace: shop}\n";

    #[test]
    fn a_spec_that_breaks_the_schema_is_invalid_and_names_each_field() {
        let a = app(&format!(
            "{HEAD}spec:\n  image: registry.example.com/web:1\n  monitoring: {{prometheus: {{port: 0, path: metrics}}}}\n"
        ));
        let Err(Refusal::Invalid(message)) = admit(&a, &Policy::default()) else {
            panic!("not refused as invalid");
        };
        assert_eq!(
            message,
            "spec.monitoring.prometheus.path: \"metrics\" does not match the pattern ^/; change it to match (see the field's description in `winapp-operator crd`); spec.monitoring.prometheus.port: 0 is below the minimum 1; use a value of at least 1"
        );
    }

    #[test]
    fn cel_rules_are_checked_and_schema_errors_come_before_the_operators_own() {
        // A CEL rule (gMSA with hostProcess) and an operator rule (a RuntimeClass with a pool
        // toleration) are both broken: only the schema's error is reported, as render reports it.
        let a = app(&format!(
            "{HEAD}spec:\n  image: x\n  hostProcess: {{}}\n  gmsa: {{credentialSpecName: reports}}\n  windows: {{runtimeClassName: win2022, toleration: {{key: os, value: windows}}}}\n"
        ));
        let Err(Refusal::Invalid(message)) = admit(&a, &Policy::default()) else {
            panic!("not refused as invalid");
        };
        assert_eq!(
            message,
            "spec.gmsa: hostProcess pods run as a host account and cannot use gMSA: remove gmsa or hostProcess"
        );
    }

    #[test]
    fn a_valid_app_is_admitted_and_the_operators_rules_still_apply() {
        assert!(admit(&app(&format!("{HEAD}spec: {{image: x}}\n")), &Policy::default()).is_ok());
        let a = app(&format!(
            "{HEAD}spec: {{image: x, windows: {{runtimeClassName: win2022, toleration: {{key: os, value: windows}}}}}}\n"
        ));
        let Err(Refusal::Invalid(message)) = admit(&a, &Policy::default()) else {
            panic!("not refused");
        };
        assert!(message.contains("spec.windows.runtimeClassName"), "{message}");
    }

    #[test]
    fn a_skipped_schema_check_still_runs_the_operators_rules_and_the_signature_follows_the_spec() {
        let mut broken = app(&format!(
            "{HEAD}spec:\n  image: registry.example.com/web:1\n  monitoring: {{prometheus: {{port: 0, path: metrics}}}}\n"
        ));
        broken.metadata.generation = Some(1);
        assert!(admit_with(&broken, &Policy::default(), SchemaCheck::Run).is_err());
        // Skipped, the schema's refusal is not repeated; the operator's own rules still run.
        assert!(admit_with(&broken, &Policy::default(), SchemaCheck::PassedUnchanged).is_ok());
        let empty_image = app(&format!("{HEAD}spec: {{image: ''}}\n"));
        assert!(admit_with(&empty_image, &Policy::default(), SchemaCheck::PassedUnchanged).is_err());
        let mut next = broken.clone();
        next.metadata.generation = Some(2);
        assert_ne!(schema_signature(&broken), schema_signature(&next));
        let mut relabelled = broken.clone();
        relabelled.metadata.labels = Some([("team".to_owned(), "x".to_owned())].into());
        assert_ne!(schema_signature(&broken), schema_signature(&relabelled));
        assert_eq!(schema_signature(&broken), schema_signature(&broken.clone()));
    }
}
