//! Everything `render` prints is valid for the real API server: the CRD itself is applied (a
//! structural or CEL error in the schema fails here), then each example's WindowsApp and its
//! rendered children are applied with server-side dry-run.

mod corpus_support;
mod support;

use std::path::PathBuf;

use corpus_support::{Expect, corpus};
use support::{TestNamespace, kubectl};
use winapp_operator::render;

#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_crd_and_every_rendered_example_are_accepted_by_the_api_server() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let client = support::client().await;
    kubectl(&["apply", "--server-side", "-f", &root.join("crds").to_string_lossy()], None)
        .unwrap_or_else(|e| panic!("the API server refused the CRD: {e}"));
    let gmsa = root.join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
    kubectl(&["apply", "--server-side", "-f", &gmsa.to_string_lossy()], None)
        .unwrap_or_else(|e| panic!("cannot install the GMSACredentialSpec CRD: {e}"));
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/windowsapps.winapp.dev",
            "crd/gmsacredentialspecs.windows.k8s.io",
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("CRDs not established: {e}"));

    let ns = TestNamespace::new(&client, "render").await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 11);
    // The node agent that config/components/windows-exporter installs, too.
    files.push(root.join("config/components/windows-exporter/windows-exporter.yaml"));
    for file in files {
        let input = std::fs::read_to_string(&file).expect("read example");
        // Into the test's namespace.
        let input = input.replace("  namespace: windows-exporter\n", "");
        kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&input))
            .unwrap_or_else(|e| panic!("{}: the API server refused the example: {e}", file.display()));
        // As scripts/demo grants its namespace (tests/generated.rs checks the demo's grants).
        let rendered = render::render_with(&input, ns.name(), &corpus_support::render_options())
            .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
        let out = kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&rendered.yaml))
            .unwrap_or_else(|e| panic!("{}: the API server refused a rendered child: {e}", file.display()));
        let applied = out.lines().filter(|l| l.contains("(server dry run)")).count();
        let documents = rendered.yaml.matches("\n---\n").count() + 1;
        assert_eq!(applied, documents, "{}: every rendered object is checked:\n{out}", file.display());
    }
    ns.cleanup().await;
}

/// What backs a volume is immutable in Kubernetes; the CRD's transition rules refuse such a change
/// at the API server with what to do, while other changes of the same volume go through.
#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_api_server_refuses_changes_to_what_backs_a_volume() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let client = support::client().await;
    kubectl(&["apply", "--server-side", "-f", &root.join("crds").to_string_lossy()], None)
        .unwrap_or_else(|e| panic!("the API server refused the CRD: {e}"));
    kubectl(&["wait", "--for=condition=Established", "crd/windowsapps.winapp.dev"], None).expect("established");
    let ns = TestNamespace::new(&client, "immutable").await;
    let app = |volumes: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: files}}\nspec:\n  image: registry.example.com/files:1\n  volumes:\n{volumes}"
        )
    };
    let smb = |source: &str, mount: &str| {
        format!(
            "    - {{name: share, mountPath: '{mount}', smb: {{source: '{source}', secretRef: {{name: creds}}}}}}\n"
        )
    };
    let claim = |class: &str, modes: &str| {
        format!(
            "    - {{name: cache, mountPath: 'C:\\cache', claim: {{storageClassName: {class}, size: 1Gi, accessModes: {modes}}}}}\n"
        )
    };
    let create = app(&(smb("//files/share", "C:\\data") + &claim("fast", "[ReadWriteMany]")));
    kubectl(&["apply", "-n", ns.name(), "-f", "-"], Some(&create)).expect("create");
    let refused = [
        (
            app(&(smb("//other/share", "C:\\data") + &claim("fast", "[ReadWriteMany]"))),
            "smb.source and smb.secretRef cannot change",
        ),
        (
            app(&(smb("//files/share", "C:\\data") + &claim("slow", "[ReadWriteMany]"))),
            "claim.storageClassName and claim.accessModes cannot change",
        ),
        (
            app(&(smb("//files/share", "C:\\data") + &claim("fast", "[ReadWriteOnce]"))),
            "claim.storageClassName and claim.accessModes cannot change",
        ),
        (
            app(&(smb("//files/share", "C:\\data")
                + "    - {name: cache, mountPath: 'C:\\cache', smb: {source: '//x/y', secretRef: {name: creds}}}\n")),
            "cannot switch between smb and claim",
        ),
    ];
    for (yaml, message) in refused {
        let err = kubectl(&["apply", "-n", ns.name(), "-f", "-"], Some(&yaml)).expect_err("refused");
        assert!(err.contains(message) && err.contains("a new name"), "{message}: {err}");
    }
    // The mount path may change, and a volume may be renamed (replaced).
    let moved = app(&(smb("//files/share", "D:\\data") + &claim("fast", "[ReadWriteMany]")));
    kubectl(&["apply", "-n", ns.name(), "-f", "-"], Some(&moved)).expect("a new mount path is accepted");
    let renamed = app(&smb("//other/share", "D:\\data").replace("name: share", "name: share2"));
    kubectl(&["apply", "-n", ns.name(), "-f", "-"], Some(&renamed)).expect("a renamed volume is a new volume");
    ns.cleanup().await;
}

/// A config file is inline or from a Secret, never both or neither: the CRD refuses the rest.
#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_api_server_refuses_a_config_file_with_both_or_no_source() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let client = support::client().await;
    kubectl(&["apply", "--server-side", "-f", &root.join("crds").to_string_lossy()], None)
        .unwrap_or_else(|e| panic!("the API server refused the CRD: {e}"));
    kubectl(&["wait", "--for=condition=Established", "crd/windowsapps.winapp.dev"], None).expect("established");
    let ns = TestNamespace::new(&client, "configsource").await;
    let app = |file: &str| {
        format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: site}}\nspec:\n  image: registry.example.com/site:1\n  config:\n    mountPath: 'C:\\app'\n    files: [{file}]\n"
        )
    };
    for file in ["{name: a.config, content: x, secretRef: {name: s, key: k}}", "{name: a.config}"] {
        let err =
            kubectl(&["apply", "--dry-run=server", "-n", ns.name(), "-f", "-"], Some(&app(file))).expect_err("refused");
        assert!(err.contains("set exactly one of content"), "{file}: {err}");
    }
    for file in ["{name: a.config, content: x}", "{name: a.config, secretRef: {name: s, key: k}}"] {
        kubectl(&["apply", "--dry-run=server", "-n", ns.name(), "-f", "-"], Some(&app(file)))
            .unwrap_or_else(|e| panic!("{file}: refused: {e}"));
    }
    ns.cleanup().await;
}

/// One source of truth for validity: every input of tests/corpus/ is created with server-side
/// dry-run and strict field validation. Every input the API server refuses, render refuses; every
/// input it accepts, render accepts, except those whose header says render refuses them: for
/// `refuses (child)` the API server must refuse what render would build (rendered without the
/// child checks, then applied with dry-run); `refuses (operator)` are the operator's own rules,
/// which the CRD cannot express. The headers themselves are checked against the server too.
#[tokio::test]
#[ignore = "needs the dev cluster: scripts/test runs it (or cargo test -- --include-ignored with KUBECONFIG set)"]
async fn the_api_server_and_render_agree_on_every_corpus_input() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let client = support::client().await;
    kubectl(&["apply", "--server-side", "-f", &root.join("crds").to_string_lossy()], None)
        .unwrap_or_else(|e| panic!("the API server refused the CRD: {e}"));
    let gmsa = root.join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
    kubectl(&["apply", "--server-side", "-f", &gmsa.to_string_lossy()], None).expect("GMSACredentialSpec CRD");
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/windowsapps.winapp.dev",
            "crd/gmsacredentialspecs.windows.k8s.io",
        ],
        None,
    )
    .expect("established");
    let ns = TestNamespace::new(&client, "corpus").await;
    let cases = corpus();
    let (mut refused_both, mut accepted_both, mut child, mut operator) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let server =
            kubectl(&["create", "--dry-run=server", "--validate=strict", "-n", ns.name(), "-f", "-"], Some(&case.yaml));
        let rendered = render::render_with(&case.yaml, ns.name(), &corpus_support::render_options());
        let verdict = |accepted: bool| if accepted { Expect::Accepts } else { Expect::Refuses };
        let server_verdict = verdict(server.is_ok());
        if server_verdict != case.server {
            failures.push(format!(
                "{}: the header says the server {:?}, it {server_verdict:?}: {server:?}",
                case.name, case.server
            ));
            continue;
        }
        match (server_verdict, &rendered, case.render) {
            (Expect::Refuses, Err(_), _) => refused_both += 1,
            (Expect::Accepts, Ok(_), Expect::Accepts) => accepted_both += 1,
            (Expect::Accepts, Err(_), Expect::RefusesOperator) => operator += 1,
            (Expect::Accepts, Err(_), Expect::RefusesChild) => {
                let options = render::Options { check_children: false, ..corpus_support::render_options() };
                match render::render_with(&case.yaml, ns.name(), &options) {
                    Ok(unchecked) => {
                        match kubectl(&["apply", "-n", ns.name(), "--dry-run=server", "-f", "-"], Some(&unchecked.yaml))
                        {
                            Err(_) => child += 1,
                            Ok(out) => failures.push(format!(
                                "{}: render refuses a child that the API server accepts:\n{out}",
                                case.name
                            )),
                        }
                    }
                    Err(e) => failures.push(format!("{}: refused before the children were built: {e:?}", case.name)),
                }
            }
            (s, r, expect) => failures.push(format!(
                "{}: the server {s:?}, render {}, header {expect:?}: {:?}",
                case.name,
                if r.is_ok() { "accepts" } else { "refuses" },
                r.as_ref().err()
            )),
        }
    }
    eprintln!(
        "corpus: {} inputs; {refused_both} refused by the API server and by render; {accepted_both} accepted by both; \
         {child} accepted by the API server but refused by render because the API server refuses a child (each checked); \
         {operator} refused by the operator's own rules",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} corpus inputs disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    ns.cleanup().await;
}
