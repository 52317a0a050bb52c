//! Helpers shared by the integration tests that run against the local dev cluster
//! (`scripts/dev-cluster up`, then `eval "$(scripts/dev-cluster env)"`; `scripts/test` does both).
//!
//! Each test binary includes this module with `mod support;`, so every item that a given binary may not
//! use carries its own `#[allow(dead_code)]`.

use std::{
    collections::BTreeMap,
    fmt::Debug,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::{Namespace, Pod, ServiceAccount},
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::{
    Client, Config, Resource, ResourceExt,
    api::{Api, DeleteParams, ListParams, PostParams},
    config::KubeConfigOptions,
    runtime::{
        WatchStreamExt,
        wait::{Condition, await_condition, conditions},
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

/// Label put on every namespace a test creates, so that leftovers can be found and removed:
/// `kubectl delete ns -l winapp.dev/test=true`.
#[allow(dead_code)]
pub const TEST_LABEL: &str = "winapp.dev/test";

/// Default time allowed for a wait against the dev cluster (2 busy cores, fake nodes).
#[allow(dead_code)]
pub const TIMEOUT: Duration = Duration::from_secs(60);

const NO_CLUSTER: &str = "KUBECONFIG is not set: run scripts/dev-cluster up and export KUBECONFIG \
     (eval \"$(scripts/dev-cluster env)\"), or run everything with scripts/test";

/// The client configuration of the dev cluster, from `KUBECONFIG`. Panics when it is unset.
#[allow(dead_code)]
pub async fn config() -> Config {
    let path = std::env::var_os("KUBECONFIG").unwrap_or_else(|| panic!("{NO_CLUSTER}"));
    Config::from_kubeconfig(&KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot load KUBECONFIG={}: {e}; {NO_CLUSTER}", path.to_string_lossy()))
}

/// An admin client of the dev cluster, from `KUBECONFIG`. Panics when it is unset.
#[allow(dead_code)]
pub async fn client() -> Client {
    Client::try_from(config().await).expect("cannot build a Kubernetes client from KUBECONFIG")
}

/// A name that is unique across test processes and runs: `prefix-<time><pid><counter>`, cut to fit
/// the 63 characters of a DNS label.
#[allow(dead_code)]
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    // Milliseconds in base 36 (6 digits, wrapping every 25 days), then the pid and a per-process counter.
    let mut n = millis % 36u128.pow(6);
    let mut time = String::new();
    for _ in 0..6 {
        time.insert(0, char::from_digit((n % 36) as u32, 36).unwrap());
        n /= 36;
    }
    let suffix = format!("{time}{:x}{:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let prefix: String = prefix
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(62 - suffix.len())
        .collect();
    format!("{}-{suffix}", prefix.trim_matches('-'))
}

/// A namespace of its own for one test: created with a unique name and the label
/// `winapp.dev/test=true`, removed by [`TestNamespace::cleanup`] (which waits until it is gone) or,
/// if the test panics first, when it is dropped (which only asks for the deletion).
#[allow(dead_code)]
pub struct TestNamespace {
    client: Client,
    name: String,
    deleted: bool,
}

#[allow(dead_code)]
impl TestNamespace {
    /// Creates the namespace and waits for its `default` ServiceAccount, without which pods are refused.
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = unique_name(prefix);
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { TEST_LABEL: "true" } }
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        let this = Self { client: client.clone(), name, deleted: false };
        wait_for(&this.api::<ServiceAccount>(), "default", "created", TIMEOUT, conditions::is_created()).await;
        this
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// An API handle for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Deletes the namespace and waits until it is gone (the namespace controller has removed
    /// everything in it). Call it at the end of a test that passed.
    pub async fn cleanup(mut self) {
        self.deleted = true;
        let api = Api::<Namespace>::all(self.client.clone());
        match api.delete(&self.name, &DeleteParams::background()).await {
            Ok(either) => {
                if let Some(uid) = either.left().and_then(|ns| ns.uid()) {
                    wait_for(&api, &self.name, "deleted", Duration::from_secs(120), conditions::is_deleted(&uid)).await;
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => panic!("cannot delete namespace {}: {e}", self.name),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        // The test's runtime may be a blocked current-thread runtime (or be going away), so ask for the
        // deletion from a thread and runtime of our own, with a client of its own.
        let name = self.name.clone();
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let config = Config::from_kubeconfig(&KubeConfigOptions::default()).await.ok()?;
                let client = Client::try_from(config).ok()?;
                Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()).await.ok()
            })
        })
        .join();
        if !matches!(outcome, Ok(Some(_))) {
            eprintln!(
                "warning: could not delete test namespace {}; remove leftovers with \
                 kubectl delete ns -l {TEST_LABEL}=true",
                self.name
            );
        }
    }
}

/// Renders an object (or anything serialisable) for a failure message, cut to a readable length.
#[allow(dead_code)]
pub fn show<T: Serialize>(obj: &T) -> String {
    let mut s = serde_json::to_string_pretty(obj).unwrap_or_else(|e| format!("<unserialisable: {e}>"));
    if s.len() > 6000 {
        let mut cut = 6000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n... (cut)");
    }
    s
}

/// Waits (with a watch, via `kube::runtime::wait::await_condition`) until the named object meets
/// `cond`, and returns it (`None` when the condition was met by the object being absent, as with
/// `conditions::is_deleted`). Panics on timeout, showing the object as last seen.
#[allow(dead_code)]
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, timeout: Duration, cond: impl Condition<K>) -> Option<K>
where
    K: Clone + Debug + Send + Serialize + DeserializeOwned + Resource + 'static,
    <K as Resource>::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).into_owned();
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(obj)) => obj,
        Ok(Err(e)) => panic!("error while waiting for {kind} {name} to be {what}: {e}"),
        Err(_) => {
            let last = match api.get_opt(name).await {
                Ok(Some(obj)) => show(&obj),
                Ok(None) => "<absent>".to_string(),
                Err(e) => format!("<cannot get it: {e}>"),
            };
            panic!("timed out after {timeout:?} waiting for {kind} {name} to be {what}; last seen:\n{last}")
        }
    }
}

/// Waits (with a watch) until the set of objects matching `label_selector` meets `pred`, and returns
/// that set, sorted by name. `pred` is only asked about complete sets (after the initial list), so
/// "no objects left" cannot be met by a list that has not arrived yet. Panics on timeout, showing the
/// objects as last seen.
#[allow(dead_code)]
pub async fn wait_for_list<K>(
    api: &Api<K>,
    label_selector: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[K]) -> bool,
) -> Vec<K>
where
    K: Clone + Debug + Send + Serialize + DeserializeOwned + Resource + 'static,
    <K as Resource>::DynamicType: Default,
{
    let kind = K::kind(&Default::default()).into_owned();
    let mut current: BTreeMap<String, K> = BTreeMap::new();
    let mut buffer: BTreeMap<String, K> = BTreeMap::new();
    let mut listed = false;
    let stream = watcher(api.clone(), watcher::Config::default().labels(label_selector)).default_backoff();
    futures::pin_mut!(stream);
    let waited = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => buffer.clear(),
                Ok(watcher::Event::InitApply(obj)) => {
                    buffer.insert(obj.name_any(), obj);
                }
                Ok(watcher::Event::InitDone) => {
                    current = std::mem::take(&mut buffer);
                    listed = true;
                }
                Ok(watcher::Event::Apply(obj)) => {
                    current.insert(obj.name_any(), obj);
                }
                Ok(watcher::Event::Delete(obj)) => {
                    current.remove(&obj.name_any());
                }
                Err(e) => eprintln!("watch of {kind} ({label_selector}) failed, retrying: {e}"),
            }
            if listed {
                let objs: Vec<K> = current.values().cloned().collect();
                if pred(&objs) {
                    return Some(objs);
                }
            }
        }
        None
    })
    .await;
    match waited {
        Ok(Some(objs)) => objs,
        Ok(None) => panic!("the watch of {kind} ({label_selector}) ended while waiting for {what}"),
        Err(_) => {
            let last: Vec<K> = current.into_values().collect();
            panic!(
                "timed out after {timeout:?} waiting for {kind}s ({label_selector}) to be {what}; last seen {} of them:\n{}",
                last.len(),
                show(&last)
            )
        }
    }
}

/// `k=v,k2=v2` for the `matchLabels` of a selector (`matchExpressions` are not supported).
#[allow(dead_code)]
pub fn selector_string(selector: &LabelSelector) -> String {
    assert!(
        selector.match_expressions.as_ref().is_none_or(|e| e.is_empty()),
        "matchExpressions are not supported by selector_string"
    );
    selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The label selector of a Deployment's pods, as a string for list and watch calls.
#[allow(dead_code)]
pub fn deployment_selector(deployment: &Deployment) -> String {
    selector_string(&deployment.spec.selector)
}

/// True when `pod` is owned by a ReplicaSet in `replica_sets` that is owned by `deployment`.
#[allow(dead_code)]
pub fn pod_belongs_to(pod: &Pod, deployment: &Deployment, replica_sets: &[ReplicaSet]) -> bool {
    let Some(deploy_uid) = deployment.uid() else {
        return false;
    };
    let owned_rs: Vec<String> = replica_sets
        .iter()
        .filter(|rs| rs.owner_references().iter().any(|o| o.uid == deploy_uid))
        .filter_map(|rs| rs.uid())
        .collect();
    pod.owner_references().iter().any(|o| o.kind == "ReplicaSet" && owned_rs.contains(&o.uid))
}

/// The ReplicaSets and pods that currently belong to a Deployment (through owner references).
#[allow(dead_code)]
pub async fn deployment_children(client: &Client, deployment: &Deployment) -> (Vec<ReplicaSet>, Vec<Pod>) {
    let ns = deployment.namespace().expect("deployment without namespace");
    let lp = ListParams::default().labels(&deployment_selector(deployment));
    let deploy_uid = deployment.uid().expect("deployment without uid");
    let replica_sets: Vec<ReplicaSet> = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
        .list(&lp)
        .await
        .expect("cannot list replicasets")
        .items
        .into_iter()
        .filter(|rs| rs.owner_references().iter().any(|o| o.uid == deploy_uid))
        .collect();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&lp)
        .await
        .expect("cannot list pods")
        .items
        .into_iter()
        .filter(|p| pod_belongs_to(p, deployment, &replica_sets))
        .collect();
    (replica_sets, pods)
}

/// Waits until the pods of a Deployment (matched by its selector and owned through its ReplicaSets)
/// meet `pred`, and returns them.
#[allow(dead_code)]
pub async fn wait_for_deployment_pods(
    client: &Client,
    deployment: &Deployment,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&[Pod]) -> bool,
) -> Vec<Pod> {
    let ns = deployment.namespace().expect("deployment without namespace");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let selector = deployment_selector(deployment);
    let deploy_uid = deployment.uid().expect("deployment without uid");
    // The ReplicaSets are read once the selected pods meet `pred`; pods of other owners matching the
    // same labels would make the check fail, not pass.
    let matched = wait_for_list(&pods, &selector, what, timeout, pred).await;
    let replica_sets: Vec<ReplicaSet> =
        rs_api.list(&ListParams::default().labels(&selector)).await.expect("cannot list replicasets").items;
    for pod in &matched {
        assert!(
            pod_belongs_to(pod, deployment, &replica_sets),
            "pod {} matches the selector of deployment {} (uid {deploy_uid}) but is not owned by it",
            pod.name_any(),
            deployment.name_any()
        );
    }
    matched
}

/// The status ("True", "False", "Unknown") of a pod condition, if the pod has it.
#[allow(dead_code)]
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Phase Running and condition Ready True.
#[allow(dead_code)]
pub fn pod_running_and_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod_condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// A condition for `wait_for`: the Deployment's controller has seen its latest spec and all its
/// replicas are updated, ready and available.
#[allow(dead_code)]
pub fn deployment_available() -> impl Condition<Deployment> {
    |obj: Option<&Deployment>| {
        let Some(d) = obj else { return false };
        let want = d.spec.replicas.unwrap_or(1);
        let Some(status) = &d.status else {
            return false;
        };
        status.observed_generation >= d.metadata.generation
            && status.replicas == Some(want)
            && status.updated_replicas == Some(want)
            && status.ready_replicas == Some(want)
            && status.available_replicas == Some(want)
    }
}

/// Lists all objects of a kind in a namespace, for assertions. Panics on error.
#[allow(dead_code)]
pub async fn list_all<K>(api: &Api<K>, label_selector: &str) -> Vec<K>
where
    K: Clone + Debug + DeserializeOwned + Resource,
{
    api.list(&ListParams::default().labels(label_selector))
        .await
        .unwrap_or_else(|e| panic!("cannot list ({label_selector}): {e}"))
        .items
}

/// Runs kubectl (the matching v1.37 client that `scripts/dev-cluster env` puts first on PATH).
#[allow(dead_code)]
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    // `kubectl wait --for=condition=...` on an object whose status has no conditions yet (a CRD
    // just applied, on a busy machine) fails at once with "accessor error" instead of waiting.
    for _ in 0..30 {
        match run("kubectl", args, stdin) {
            Err(e) if args.first() == Some(&"wait") && e.contains(".status.conditions accessor error") => {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            done => return done,
        }
    }
    run("kubectl", args, stdin)
}

/// Runs a program with optional standard input: its stdout on success, the command line and its
/// output on failure.
#[allow(dead_code)]
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{program} {}: {stdout}{}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Writes to `path` a kubeconfig of the dev cluster that authenticates with a fresh token of the
/// operator's ServiceAccount (winapp-system/winapp-operator), valid for `duration` (`3h`), so that
/// a test acts with exactly the rights the operator has. The ServiceAccount must exist.
#[allow(dead_code)]
pub fn write_operator_kubeconfig(path: &std::path::Path, duration: &str) {
    let token = kubectl(
        &["create", "token", "winapp-operator", "-n", "winapp-system", &format!("--duration={duration}")],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let admin = kubectl(&["config", "view", "--raw", "--minify", "-o", "json"], None).unwrap_or_else(|e| panic!("{e}"));
    let admin: serde_json::Value = serde_json::from_str(&admin).expect("kubeconfig JSON");
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "dev", "cluster": admin["clusters"][0]["cluster"].clone()}],
        "users": [{"name": "winapp-operator", "user": {"token": token.trim()}}],
        "contexts": [{"name": "operator", "context": {"cluster": "dev", "user": "winapp-operator"}}],
        "current-context": "operator",
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
    std::fs::write(path, kubeconfig.to_string()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Applies config/admission, the admission fence around the operator's ServiceAccount, and waits
/// until the API server enforces it: until a server-side dry run of deleting the ClusterRole
/// `cluster-admin` as the operator (`operator_kubeconfig`) is refused by the fence. A dry run
/// changes nothing, also when the fence is not in force yet.
#[allow(dead_code)]
pub fn install_fence(operator_kubeconfig: &std::path::Path) {
    let dir = format!("{}/config/admission", env!("CARGO_MANIFEST_DIR"));
    kubectl(&["apply", "--server-side", "-k", &dir], None).unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = operator_kubeconfig.to_string_lossy();
    let mut last = String::new();
    for _ in 0..120 {
        match kubectl(
            &["--kubeconfig", &kubeconfig, "delete", "clusterrole", "cluster-admin", "--dry-run=server"],
            None,
        ) {
            Err(e) if e.contains("winapp-operator-fence") => return,
            Err(e) => last = e,
            Ok(out) => last = out,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the admission fence of config/admission is not enforced after 30 s; last answer: {last}");
}

/// Every document of a YAML stream, skipping empty ones.
#[allow(dead_code)]
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(yaml)
        .unwrap_or_else(|e| panic!("not a YAML stream: {e}\n{yaml}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// `kubectl kustomize` of a throwaway overlay of `resources` and `components` (paths under
/// config/), made under target/ so that the paths are relative to the overlay, as kustomize wants.
#[allow(dead_code)]
pub fn kustomize(resources: &[&str], components: &[&str]) -> Vec<serde_json::Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join(unique_name("overlay"));
    std::fs::create_dir_all(&dir).expect("overlay dir");
    let list = |paths: &[&str]| paths.iter().map(|p| format!("../../config/{p}")).collect::<Vec<_>>().join(", ");
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [{}]\ncomponents: [{}]\n",
        list(resources),
        list(components)
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization).expect("write overlay");
    let out = kubectl(&["kustomize", &dir.to_string_lossy()], None);
    let _ = std::fs::remove_dir_all(&dir);
    documents(&out.unwrap_or_else(|e| panic!("kustomize {resources:?} with {components:?} failed: {e}")))
}
