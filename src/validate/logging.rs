//! `spec.logging`: LogMonitor's configuration, generated as a file of the app's ConfigMap, and
//! the container command that runs the app's own command through `LogMonitor.exe`.
//!
//! Kubernetes replaces an image's ENTRYPOINT when a pod sets `command`, and cannot read it from
//! the image: so the command to wrap is `spec.command`, or for IIS the IIS images' entrypoint.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::storage::Mounts;
use super::{ConfigSettings, ValidationError, checksum, is_windows_path};
use crate::api::{EventLevel, Logging, WindowsAppSpec};

/// The ConfigMap key (and file name) of LogMonitor's configuration.
pub const CONFIG_KEY: &str = "LogMonitorConfig.json";
/// Where LogMonitor is unless `logMonitorPath` says otherwise.
pub const DEFAULT_LOG_MONITOR: &str = r"C:\LogMonitor\LogMonitor.exe";
/// The IIS images' entrypoint, wrapped when `iis` is set and `spec.command` is empty.
pub const IIS_ENTRYPOINT: [&str; 2] = [r"C:\ServiceMonitor.exe", "w3svc"];
/// Where IIS writes its W3C logs, a directory per site.
pub const IIS_LOG_DIRECTORY: &str = r"C:\inetpub\logs\LogFiles";
/// The files sent when `filter` is not given.
pub const DEFAULT_FILTER: &str = "*.log";

/// `spec.logging`, checked: the container's command (LogMonitor, its configuration, then the
/// app's command), with the configuration added to `config` as a generated file.
pub fn logging(
    spec: &WindowsAppSpec,
    config: &mut Option<ConfigSettings>,
    mounts: &mut Mounts,
    errors: &mut Vec<ValidationError>,
) -> Option<Vec<String>> {
    let l = spec.logging.as_ref()?;
    let before = errors.len();
    check(l, spec, config.as_ref(), errors);
    let monitor = l.log_monitor_path.clone().unwrap_or_else(|| DEFAULT_LOG_MONITOR.into());
    let config_path = format!("{}\\{CONFIG_KEY}", parent(&monitor));
    mounts.claim("spec.logging".into(), &config_path, errors);
    let wrapped: Vec<String> = if !spec.command.is_empty() {
        spec.command.clone()
    } else if l.iis == Some(true) {
        IIS_ENTRYPOINT.iter().map(|s| (*s).to_owned()).collect()
    } else {
        errors.push(invalid(
            "spec.command",
            "spec.logging runs the container's command through LogMonitor, and Kubernetes cannot read an image's ENTRYPOINT: set spec.command to it (for an IIS image [\"C:\\\\ServiceMonitor.exe\", \"w3svc\"], or set logging.iis: true)",
        ));
        return None;
    };
    if errors.len() > before {
        return None;
    }
    let content = log_monitor_config(l);
    let settings = config.get_or_insert_with(|| ConfigSettings {
        mount_path: String::new(),
        files: BTreeMap::new(),
        secret_files: BTreeMap::new(),
        generated: BTreeMap::new(),
        checksum: String::new(),
        secret_versions: BTreeMap::new(),
    });
    // A new sum only for apps with logging: apps without it keep their checksum, and their pods.
    settings.checksum = checksum(&BTreeMap::from([
        ("files".to_owned(), settings.checksum.clone()),
        (format!("{CONFIG_KEY}\u{0}generated"), content.clone()),
    ]));
    settings.generated.insert(CONFIG_KEY.into(), (config_path.clone(), content));
    let mut command = vec![monitor, "/Config".into(), config_path];
    command.extend(wrapped);
    Some(command)
}

/// What the schema checks, for objects stored under an older schema and for `render`.
fn check(l: &Logging, spec: &WindowsAppSpec, config: Option<&ConfigSettings>, errors: &mut Vec<ValidationError>) {
    if l.iis != Some(true) && l.event_log.is_empty() && l.files.is_empty() {
        errors.push(invalid(
            "spec.logging",
            "name at least one source (iis: true, an eventLog channel or a files entry), or remove logging",
        ));
    }
    if spec.host_process.is_some() {
        errors.push(invalid(
            "spec.logging",
            "a hostProcess container sees its mounts under %CONTAINER_SANDBOX_MOUNT_POINT%, not where LogMonitor would look, and writes to stdout itself: remove logging or hostProcess",
        ));
    }
    if config.is_some_and(|c| c.files.contains_key(CONFIG_KEY) || c.secret_files.contains_key(CONFIG_KEY)) {
        errors.push(invalid(
            &format!("spec.config.files[{CONFIG_KEY}]"),
            "spec.logging generates this file: remove it from spec.config.files, or remove spec.logging and keep your own",
        ));
    }
    if let Some(p) = l.log_monitor_path.as_ref().filter(|p| !is_windows_path(p)) {
        errors
            .push(ValidationError::InvalidWindowsPath { field: "spec.logging.logMonitorPath".into(), path: p.clone() });
    }
    let mut channels = BTreeSet::new();
    for (i, c) in l.event_log.iter().enumerate() {
        if !is_channel(&c.channel) {
            errors.push(invalid(
                &format!("spec.logging.eventLog[{i}].channel"),
                &format!("{:?} is not an event log channel name, such as Application or Microsoft-Windows-IIS-Logging/Operational", c.channel),
            ));
        } else if !channels.insert(c.channel.to_ascii_lowercase()) {
            errors.push(invalid(
                &format!("spec.logging.eventLog[{i}].channel"),
                &format!(
                    "{:?} is listed twice (channel names are case-insensitive); keep one, with the level you want",
                    c.channel
                ),
            ));
        }
    }
    for (i, f) in l.files.iter().enumerate() {
        if !is_windows_path(&f.directory) {
            errors.push(ValidationError::InvalidWindowsPath {
                field: format!("spec.logging.files[{i}].directory"),
                path: f.directory.clone(),
            });
        }
        if let Some(filter) = f.filter.as_ref().filter(|x| !is_filter(x)) {
            errors.push(invalid(
                &format!("spec.logging.files[{i}].filter"),
                &format!("{filter:?} is not a file name pattern: use * and ? wildcards without a path, such as *.log"),
            ));
        }
    }
}

/// LogMonitor's configuration: the event log channels, then IIS's logs, then the app's files.
/// A directory that does not exist yet is waited for (IIS creates its log directory on the first
/// request; LogMonitor's default would give up, and stop the container, after 5 minutes).
pub fn log_monitor_config(l: &Logging) -> String {
    let mut sources = Vec::new();
    if !l.event_log.is_empty() {
        let channels = l
            .event_log
            .iter()
            .map(|c| Channel { name: &c.channel, level: c.level.unwrap_or(EventLevel::Error).as_str() })
            .collect();
        sources.push(Source::EventLog { start_at_oldest_record: true, event_format_multi_line: false, channels });
    }
    if l.iis == Some(true) {
        sources.push(Source::file(IIS_LOG_DIRECTORY, DEFAULT_FILTER, true));
    }
    for f in &l.files {
        let filter = f.filter.as_deref().unwrap_or(DEFAULT_FILTER);
        sources.push(Source::file(&f.directory, filter, f.include_subdirectories.unwrap_or(false)));
    }
    let doc = Document { log_config: LogConfig { sources } };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// LogMonitor's file format, its keys in the order its documentation shows them.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "LogConfig")]
    log_config: LogConfig<'a>,
}

#[derive(Serialize)]
struct LogConfig<'a> {
    sources: Vec<Source<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
enum Source<'a> {
    EventLog {
        start_at_oldest_record: bool,
        event_format_multi_line: bool,
        channels: Vec<Channel<'a>>,
    },
    File {
        directory: &'a str,
        filter: &'a str,
        include_subdirectories: bool,
        include_file_names: bool,
        wait_in_seconds: &'static str,
    },
}

impl<'a> Source<'a> {
    fn file(directory: &'a str, filter: &'a str, include_subdirectories: bool) -> Self {
        Source::File {
            directory,
            filter,
            include_subdirectories,
            include_file_names: false,
            wait_in_seconds: "INFINITY",
        }
    }
}

#[derive(Serialize)]
struct Channel<'a> {
    name: &'a str,
    level: &'static str,
}

/// The directory of a Windows path (`C:\LogMonitor\LogMonitor.exe` -> `C:\LogMonitor`).
fn parent(path: &str) -> &str {
    path.rsplit_once('\\').map_or(path, |(dir, _)| dir)
}

/// The rule of [`crate::api::EVENT_CHANNEL_PATTERN`].
fn is_channel(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b' ' | b'.' | b'_' | b'/'))
}

/// The rule of [`crate::api::FILE_FILTER_PATTERN`].
fn is_filter(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.chars().any(|c| matches!(c, '\\' | '/' | ':' | '"' | '<' | '>' | '|'))
}

fn invalid(field: &str, message: &str) -> ValidationError {
    ValidationError::InvalidLogging { field: field.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WindowsApp;
    use crate::validate::validate;
    use serde_json::{Value, json};

    fn app(extra: &str) -> WindowsApp {
        let yaml = format!(
            "apiVersion: winapp.dev/v1alpha1\nkind: WindowsApp\nmetadata: {{name: web, namespace: shop}}\nspec:\n  image: registry.example.com/web:1\n{extra}"
        );
        serde_saphyr::from_str(&yaml).expect("test YAML")
    }

    fn errors(extra: &str) -> Vec<String> {
        match validate(&app(extra), None) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn iis_logging_wraps_service_monitor_and_writes_the_config_beside_log_monitor() {
        let v = validate(&app("  logging: {iis: true, eventLog: [{channel: Application}]}\n"), None).expect("valid");
        assert_eq!(
            v.command,
            [
                r"C:\LogMonitor\LogMonitor.exe",
                "/Config",
                r"C:\LogMonitor\LogMonitorConfig.json",
                r"C:\ServiceMonitor.exe",
                "w3svc"
            ]
        );
        let config = v.config.expect("a generated file makes a config");
        let (path, content) = &config.generated[CONFIG_KEY];
        assert_eq!(path, r"C:\LogMonitor\LogMonitorConfig.json");
        let doc: Value = serde_json::from_str(content).expect("JSON");
        let sources = doc["LogConfig"]["sources"].as_array().expect("sources");
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0]["type"], "EventLog");
        assert_eq!(sources[0]["channels"][0], json!({"name": "Application", "level": "Error"}));
        assert_eq!(sources[1]["directory"], IIS_LOG_DIRECTORY);
        assert_eq!(sources[1]["includeSubdirectories"], true);
        assert_eq!(sources[1]["waitInSeconds"], "INFINITY");
    }

    #[test]
    fn the_app_command_is_wrapped_as_given_with_its_args_kept_apart() {
        let v = validate(
            &app("  command: ['C:\\app\\worker.exe']\n  args: ['--queue', 'orders']\n  logging:\n    logMonitorPath: 'D:\\tools\\LogMonitor.exe'\n    files: [{directory: 'C:\\app\\logs', filter: 'worker-*.txt', includeSubdirectories: true}]\n"),
            None,
        )
        .expect("valid");
        assert_eq!(
            v.command,
            [r"D:\tools\LogMonitor.exe", "/Config", r"D:\tools\LogMonitorConfig.json", r"C:\app\worker.exe"]
        );
        assert_eq!(v.args, ["--queue", "orders"]);
        let content = &v.config.expect("config").generated[CONFIG_KEY].1;
        assert!(content.contains(r#""filter": "worker-*.txt""#), "{content}");
    }

    #[test]
    fn a_change_of_the_logging_changes_the_checksum_and_no_logging_keeps_the_old_one() {
        let files = "  config: {mountPath: 'C:\\inetpub\\wwwroot', files: [{name: Web.config, content: x}]}\n";
        let sum =
            |extra: &str| validate(&app(&format!("{files}{extra}")), None).expect("valid").config.expect("c").checksum;
        let plain = sum("");
        let with_errors = sum("  logging: {iis: true, eventLog: [{channel: Application}]}\n");
        let with_warnings = sum("  logging: {iis: true, eventLog: [{channel: Application, level: Warning}]}\n");
        assert_ne!(plain, with_errors);
        assert_ne!(with_errors, with_warnings);
        let mut expected = BTreeMap::new();
        expected.insert("Web.config".to_owned(), "x".to_owned());
        assert_eq!(plain, checksum(&expected), "apps without logging keep the checksum they had");
    }

    #[test]
    fn bad_logging_is_refused_with_the_field_and_the_fix() {
        let e = errors("  logging: {eventLog: [{channel: Application}]}\n");
        assert!(e.iter().any(|m| m.starts_with("spec.command: spec.logging runs the container's command")), "{e:?}");
        let e = errors("  command: [a.exe]\n  logging: {}\n");
        assert!(e.iter().any(|m| m.starts_with("spec.logging: name at least one source")), "{e:?}");
        let e = errors("  command: [a.exe]\n  logging: {eventLog: [{channel: System}, {channel: system}]}\n");
        assert!(e.iter().any(|m| m.contains("eventLog[1].channel") && m.contains("listed twice")), "{e:?}");
        let e = errors("  command: [a.exe]\n  logging: {files: [{directory: 'logs', filter: 'a\\b.log'}]}\n");
        assert!(e.iter().any(|m| m.starts_with("spec.logging.files[0].directory")), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("spec.logging.files[0].filter")), "{e:?}");
        let e = errors(
            "  config: {mountPath: 'C:\\x', files: [{name: LogMonitorConfig.json, content: '{}'}]}\n  logging: {iis: true}\n",
        );
        assert!(
            e.iter().any(|m| m.starts_with("spec.config.files[LogMonitorConfig.json]: spec.logging generates")),
            "{e:?}"
        );
        let e = errors(
            "  logging: {iis: true}\n  volumes: [{name: v, mountPath: 'C:\\LogMonitor\\LogMonitorConfig.json', claim: {size: 1Gi}}]\n",
        );
        assert!(e.iter().any(|m| m.contains("is used twice")), "{e:?}");
    }
}
