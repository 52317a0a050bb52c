//! Pure check of the WindowsApps per Windows Server build: which apps are pinned to which build
//! (`spec.windows.version`), and the builds the cluster is leaving: no Ready node of the build
//! left (error: the apps' pods cannot be scheduled again), or all of its nodes cordoned
//! (warning: their pods run until the nodes are drained, then wait Pending). Each app pinned there
//! should move to another build first (README: Moving an app to another Windows Server build).

use std::collections::BTreeMap;

use super::facts::{AppFacts, Lookup, NodeFacts};
use super::{Check, Finding, name_list};
use crate::api::WindowsVersion;

/// At most this many app and node names in one message.
const MAX_NAMES: usize = 8;

/// Where the README says how to move an app.
const HOW_TO_MOVE: &str = "README: Moving an app to another Windows Server build";

/// One finding per Windows build that WindowsApps are pinned to, and one for the apps that name
/// no build. Nothing when the WindowsApps cannot be read (the Pod Security check says so) or
/// there are none.
pub fn app_builds(apps: &Lookup<Option<Vec<AppFacts>>>, nodes: &[NodeFacts]) -> Vec<Finding> {
    let Some(Some(apps)) = apps.found() else { return Vec::new() };
    let mut by_version: BTreeMap<Option<&str>, Vec<String>> = BTreeMap::new();
    for app in apps {
        by_version.entry(app.windows_version.as_deref()).or_default().push(format!("{}/{}", app.namespace, app.name));
    }
    by_version
        .into_iter()
        .map(|(version, names)| match version {
            None => Finding::ok(
                Check::AppBuilds,
                format!("{} without spec.windows.version", count(names.len())),
                format!(
                    "{}: their pods may land on any Windows build, so their images must run on every build of the pool",
                    name_list(&names, MAX_NAMES)
                ),
            ),
            Some(v) => match WindowsVersion::ALL.into_iter().find(|w| w.as_str() == v) {
                Some(w) => pinned(w, &names, nodes),
                None => Finding::warning(
                    Check::AppBuilds,
                    format!("{} with an unknown Windows release {v:?}", count(names.len())),
                    format!(
                        "{}: the operator refuses them until spec.windows.version is ltsc2019, ltsc2022 or ltsc2025",
                        name_list(&names, MAX_NAMES)
                    ),
                ),
            },
        })
        .collect()
}

fn count(n: usize) -> String {
    format!("{n} {}", if n == 1 { "WindowsApp" } else { "WindowsApps" })
}

/// The apps pinned to `v`, against the Windows nodes of its build.
fn pinned(v: WindowsVersion, names: &[String], nodes: &[NodeFacts]) -> Finding {
    let of_build: Vec<&NodeFacts> =
        nodes.iter().filter(|n| n.is_windows() && n.windows_build.as_deref() == Some(v.build())).collect();
    let ready: Vec<&NodeFacts> = of_build.iter().copied().filter(|n| n.ready).collect();
    let usable = ready.iter().filter(|n| !n.unschedulable).count();
    let release = format!("{} ({})", v.as_str(), v.build());
    let apps = name_list(names, MAX_NAMES);
    let title = format!("{release}: {}", count(names.len()));
    if ready.is_empty() {
        let (nodes, which) = if of_build.is_empty() {
            ("the cluster has no node of this build".to_owned(), "a build with no nodes")
        } else {
            let not_ready: Vec<&str> = of_build.iter().map(|n| n.name.as_str()).collect();
            (
                format!("none of its nodes is Ready ({})", name_list(&not_ready, MAX_NAMES)),
                "a build the cluster is leaving",
            )
        };
        return Finding::error(
            Check::AppBuilds,
            format!("{title} on {which}"),
            format!(
                "{nodes}: the pods of {apps} cannot be scheduled again; add nodes of this build, or move each app \
                 to another build (set spec.windows.version and the image's tag together; {HOW_TO_MOVE})"
            ),
        );
    }
    if usable == 0 {
        let cordoned: Vec<&str> = ready.iter().map(|n| n.name.as_str()).collect();
        return Finding::warning(
            Check::AppBuilds,
            format!("{title} on a build the cluster is leaving"),
            format!(
                "every node of this build is cordoned ({}): the pods of {apps} run there until the nodes are \
                 drained, then wait Pending; move each app to another build before the drain (set \
                 spec.windows.version and the image's tag together; {HOW_TO_MOVE})",
                name_list(&cordoned, MAX_NAMES)
            ),
        );
    }
    Finding::ok(Check::AppBuilds, title, format!("{apps}; {usable} of the build's node(s) Ready and schedulable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Level;

    fn app(ns: &str, name: &str, version: Option<&str>) -> AppFacts {
        AppFacts {
            namespace: ns.into(),
            name: name.into(),
            windows_version: version.map(str::to_owned),
            ..AppFacts::default()
        }
    }

    fn node(name: &str, build: &str, ready: bool, cordoned: bool) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            os: Some("windows".into()),
            windows_build: Some(build.into()),
            ready,
            unschedulable: cordoned,
            ..NodeFacts::default()
        }
    }

    #[test]
    fn apps_are_listed_per_build_and_leaving_builds_are_flagged() {
        let apps = Lookup::Found(Some(vec![
            app("shop", "web", Some("ltsc2019")),
            app("shop", "api", Some("ltsc2022")),
            app("hr", "payroll", Some("ltsc2019")),
            app("ops", "agent", None),
            app("lab", "next", Some("ltsc2025")),
            app("old", "x", Some("ltsc2016")),
        ]));
        let nodes = [
            node("win2019-1", "10.0.17763", true, true),
            node("win2022-1", "10.0.20348", true, false),
            node("win2022-2", "10.0.20348", false, false),
            node("win2025-1", "10.0.26100", false, false),
        ];
        let found = app_builds(&apps, &nodes);
        let got: Vec<(Level, &str)> = found.iter().map(|f| (f.level, f.title.as_str())).collect();
        assert_eq!(
            got,
            [
                (Level::Ok, "1 WindowsApp without spec.windows.version"),
                (Level::Warning, "1 WindowsApp with an unknown Windows release \"ltsc2016\""),
                (Level::Warning, "ltsc2019 (10.0.17763): 2 WindowsApps on a build the cluster is leaving"),
                (Level::Ok, "ltsc2022 (10.0.20348): 1 WindowsApp"),
                (Level::Error, "ltsc2025 (10.0.26100): 1 WindowsApp on a build the cluster is leaving"),
            ]
        );
        assert!(found[2].message.contains("cordoned (win2019-1)") && found[2].message.contains("shop/web, hr/payroll"));
        assert!(found[3].message.starts_with("shop/api; 1 of the build's node(s)"), "{}", found[3].message);
        assert!(found[4].message.contains("none of its nodes is Ready (win2025-1)"), "{}", found[4].message);
    }

    #[test]
    fn a_build_with_no_node_left_is_an_error_and_no_apps_no_finding() {
        let apps = Lookup::Found(Some(vec![app("shop", "web", Some("ltsc2019"))]));
        let found = app_builds(&apps, &[node("win2022-1", "10.0.20348", true, false)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].level, Level::Error);
        assert!(found[0].message.starts_with("the cluster has no node of this build"), "{}", found[0].message);
        assert_eq!(found[0].title, "ltsc2019 (10.0.17763): 1 WindowsApp on a build with no nodes");
        assert!(app_builds(&Lookup::Found(Some(vec![])), &[]).is_empty());
        assert!(app_builds(&Lookup::Found(None), &[]).is_empty());
        assert!(app_builds(&Lookup::Forbidden("403".into()), &[]).is_empty());
    }
}
