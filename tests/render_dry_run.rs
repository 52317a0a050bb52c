//! Everything `render` prints is valid for the real API server: the CRD itself is applied (a
//! structural or CEL error in the schema fails here), then each example's WindowsApp and its
//! rendered children are applied with server-side dry-run.

mod support;

use std::path::PathBuf;

use support::{TestNamespace, kubectl};
use winapp_operator::render;

#[tokio::test]
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
        let rendered = render::render(&input, ns.name()).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
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
