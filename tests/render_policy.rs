//! `render` applies the platform's pod policy as the operator does: a hostile `podTemplate`
//! override is refused with its field path, the rule and what to do, and passes once the rule is
//! allowed with `--allow-pod-override`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const HOSTILE: &str = r#"apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata: {name: web, namespace: shop}
spec:
  image: mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022
  podTemplate:
    spec:
      hostPID: true
      volumes: [{name: host, hostPath: {path: 'C:\'}}]
      containers: [{name: app, volumeMounts: [{name: host, mountPath: 'C:\host'}]}]
"#;

fn render(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_winapp-operator"))
        .args(["render", "-f", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start render");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write input");
    child.wait_with_output().expect("render output")
}

#[test]
fn render_refuses_what_the_default_policy_refuses() {
    let out = render(&[], HOSTILE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The exit code of any invalid input.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is printed for a refused app");
    for words in [
        "spec.podTemplate.spec.volumes[name=host].hostPath",
        "rule host-path",
        "spec.volumes",
        "spec.podTemplate.spec.hostPID",
        "rule host-namespaces",
        "ask the platform team to allow rule",
    ] {
        assert!(stderr.contains(words), "stderr should mention {words:?}:\n{stderr}");
    }
}

#[test]
fn render_allows_the_rules_named_by_the_flag() {
    // Repeated, and comma-separated.
    for args in [
        &["--allow-pod-override", "host-path", "--allow-pod-override", "host-namespaces"][..],
        &["--allow-pod-override", "host-path,host-namespaces"][..],
    ] {
        let out = render(args, HOSTILE);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("hostPath:") && stdout.contains("hostPID: true"), "{stdout}");
    }
    // One rule allowed, the other still refused.
    let out = render(&["--allow-pod-override", "host-path"], HOSTILE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rule host-namespaces") && !stderr.contains("rule host-path"), "{stderr}");
}

#[test]
fn an_unknown_rule_name_is_a_usage_error_that_lists_the_rules() {
    let out = render(&["--allow-pod-override", "hostpath"], HOSTILE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("host-path") && stderr.contains("remove-generated"), "{stderr}");
}

/// `render --warm-up` prints what the operator with `--warm-up` applies: the warm-up DaemonSet of
/// an app that does not say, none for one that turns it off or for a node agent.
#[test]
fn render_applies_the_platforms_warm_up_default_as_the_operator_does() {
    let app = |name: &str, extra: &str| {
        format!(
            "---\napiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  image: registry.example.com/web:1-ltsc2022\n{extra}"
        )
    };
    let input =
        [app("silent", ""), app("declined", "  warmUp: {enabled: false}\n"), app("agent", "  nodeAgent: true\n")]
            .concat();
    let warm_ups = |args: &[&str]| {
        let out = render(args, &input);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut names: Vec<String> = yaml
            .lines()
            .filter_map(|l| l.trim().strip_prefix("name: "))
            .filter(|n| n.ends_with("-warmup"))
            .map(str::to_owned)
            .collect();
        names.dedup();
        (names, yaml)
    };
    assert_eq!(warm_ups(&["--allow", "node-agent"]).0, Vec::<String>::new(), "off unless the platform turns it on");
    let (names, yaml) =
        warm_ups(&["--allow", "node-agent", "--warm-up", "--warm-up-pause-image", "pause.example.com/pause:1"]);
    assert_eq!(names, vec!["silent-warmup".to_owned()], "the spec's false wins; node agents are not warmed");
    assert!(yaml.contains("image: pause.example.com/pause:1"), "{yaml}");
}
