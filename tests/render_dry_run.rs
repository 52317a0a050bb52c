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
    for file in files {
        let input = std::fs::read_to_string(&file).expect("read example");
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
