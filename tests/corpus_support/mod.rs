//! Reading tests/corpus/: each file starts with `# server: ...`, `# render: ...` and `# what: ...`.

use std::path::PathBuf;

/// What happens to an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Accepts,
    Refuses,
    /// render refuses: the API server would refuse a child that render builds.
    RefusesChild,
    /// render refuses by the operator's own rules (the operator reports Stalled/InvalidSpec).
    RefusesOperator,
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // each test binary reads different fields
pub struct Case {
    pub name: String,
    pub server: Expect,
    pub render: Expect,
    pub what: String,
    pub yaml: String,
}

fn header<'a>(yaml: &'a str, key: &str) -> Option<&'a str> {
    yaml.lines().take_while(|l| l.starts_with('#')).find_map(|l| l.strip_prefix(&format!("# {key}: ")))
}

fn expect(s: &str) -> Option<Expect> {
    match s {
        "accepts" => Some(Expect::Accepts),
        "refuses" => Some(Expect::Refuses),
        "refuses (child)" => Some(Expect::RefusesChild),
        "refuses (operator)" => Some(Expect::RefusesOperator),
        _ => None,
    }
}

/// Every case of tests/corpus/, sorted by name.
pub fn corpus() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/corpus/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let yaml = std::fs::read_to_string(&path).expect("read corpus file");
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let field =
                |key: &str| header(&yaml, key).unwrap_or_else(|| panic!("{name}: no `# {key}:` line")).to_owned();
            let server = expect(&field("server")).unwrap_or_else(|| panic!("{name}: bad `# server:`"));
            let render = expect(&field("render")).unwrap_or_else(|| panic!("{name}: bad `# render:`"));
            assert!(matches!(server, Expect::Accepts | Expect::Refuses), "{name}: the server accepts or refuses");
            assert!(
                server == Expect::Accepts || render == Expect::Refuses,
                "{name}: what the server refuses, render refuses"
            );
            Case { what: field("what"), name, server, render, yaml }
        })
        .collect()
}

/// What render is given for the corpus: the spec's own powers beyond the namespace granted
/// (HostProcess, node agents, other pools' taints, RuntimeClasses, SMB shares), as a platform
/// team grants them. The corpus is about what the API server's schema accepts; the platform's
/// policy has tests of its own (tests/validate.rs, src/policy).
#[allow(dead_code)]
pub fn render_options() -> winapp_operator::render::Options {
    use winapp_operator::policy::{Policy, Rule};
    let policy =
        Policy::allowing([Rule::HostProcess, Rule::NodeAgent, Rule::OtherTaints, Rule::RuntimeClass, Rule::SmbVolumes]);
    winapp_operator::render::Options { policy, ..winapp_operator::render::Options::default() }
}
