//! The container's preStop hook from `spec.shutdown.preStop`: a command as given, or the IIS
//! drain as one Windows PowerShell command line.
//!
//! The script holds no double quote and no backslash before a quote, so the Windows command line
//! that containerd builds from the exec's arguments reaches PowerShell unchanged; the site name
//! is a PowerShell single-quoted string (the schema allows no quote in it, and one would be
//! doubled anyway).

use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, LifecycleHandler};

use crate::validate::PreStopAction;

/// Windows PowerShell, as IIS images (servercore) have it, started for a script.
const POWERSHELL: [&str; 7] =
    ["powershell.exe", "-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command"];

/// The container's lifecycle, when a pre-stop action is set.
pub fn lifecycle(pre_stop: Option<&PreStopAction>) -> Option<Lifecycle> {
    let command = match pre_stop? {
        PreStopAction::Command(command) => command.clone(),
        PreStopAction::Iis { site, delay_seconds, drain_seconds } => {
            let mut command: Vec<String> = POWERSHELL.iter().map(|s| (*s).to_owned()).collect();
            command.push(iis_drain_script(site.as_deref(), *delay_seconds, *drain_seconds));
            command
        }
    };
    Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction { command: Some(command) }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    })
}

/// `s` as a PowerShell single-quoted string literal.
fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The IIS drain: wait for the endpoints to go, stop the site (every started site when none is
/// named) with appcmd, then wait until IIS's request monitor reports no request in flight, at
/// most `drain` seconds (all of them when the monitor is not installed: appcmd then fails).
pub fn iis_drain_script(site: Option<&str>, delay: i64, drain: i64) -> String {
    let mut steps = vec!["$ErrorActionPreference = 'Continue'".to_owned()];
    if delay > 0 {
        steps.push(format!("Start-Sleep -Seconds {delay}"));
    }
    steps.push("$appcmd = Join-Path $env:windir 'system32\\inetsrv\\appcmd.exe'".to_owned());
    steps.push(match site {
        Some(site) => format!("& $appcmd stop site {}", single_quoted(site)),
        None => "& $appcmd list site /state:Started /text:name | ForEach-Object { & $appcmd stop site $_ }".to_owned(),
    });
    if drain > 0 {
        steps.push(format!("$deadline = (Get-Date).AddSeconds({drain})"));
        steps.push(
            "while ((Get-Date) -lt $deadline) { $inFlight = & $appcmd list requests 2>$null; if ($LASTEXITCODE -eq 0 -and -not $inFlight) { break }; Start-Sleep -Seconds 1 }"
                .to_owned(),
        );
    }
    steps.push("exit 0".to_owned());
    steps.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(l: Option<Lifecycle>) -> Vec<String> {
        l.and_then(|l| l.pre_stop).and_then(|h| h.exec).and_then(|e| e.command).unwrap_or_default()
    }

    #[test]
    fn a_command_is_run_as_given() {
        let given = vec!["cmd".to_owned(), "/c".to_owned(), "echo bye".to_owned()];
        assert_eq!(command(lifecycle(Some(&PreStopAction::Command(given.clone())))), given);
        assert_eq!(lifecycle(None), None);
    }

    #[test]
    fn the_iis_drain_waits_stops_the_named_site_and_drains() {
        let iis = PreStopAction::Iis { site: Some("Default Web Site".into()), delay_seconds: 5, drain_seconds: 30 };
        let c = command(lifecycle(Some(&iis)));
        assert_eq!(&c[..7], &POWERSHELL.map(String::from)[..]);
        assert_eq!(c.len(), 8, "the script is one argument");
        let script = &c[7];
        let sleep = script.find("Start-Sleep -Seconds 5").expect("the delay");
        let stop = script.find("& $appcmd stop site 'Default Web Site'").expect("the site stopped, quoted");
        let drain = script.find("AddSeconds(30)").expect("the drain");
        assert!(sleep < stop && stop < drain, "{script}");
        assert!(script.ends_with("exit 0"), "a drain cut short is no failure of the hook: {script}");
    }

    #[test]
    fn the_script_survives_the_windows_command_line() {
        // containerd joins exec arguments into one command line: a double quote, or a backslash
        // before one, would be rewritten on the way to PowerShell.
        for site in [None, Some("shop"), Some("it's")] {
            let script = iis_drain_script(site, 0, 10);
            assert!(!script.contains('"'), "{script}");
            assert!(!script.contains("Start-Sleep -Seconds 0"), "no delay asked: {script}");
        }
        assert!(iis_drain_script(Some("it's"), 0, 0).contains("stop site 'it''s'"), "a quote is doubled");
        let all = iis_drain_script(None, 5, 0);
        assert!(all.contains("list site /state:Started /text:name | ForEach-Object"), "{all}");
        assert!(!all.contains("requests"), "no drain asked: {all}");
    }
}
