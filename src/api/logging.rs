//! `spec.logging`: the Windows logs that never reach stdout (IIS log files, event log channels,
//! an app's own log files), sent there by Microsoft's LogMonitor so that `kubectl logs` and the
//! cluster's log shipper see them. The operator writes LogMonitor's configuration into the app's
//! ConfigMap and starts the container's command through `LogMonitor.exe`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds;
use super::config::{WINDOWS_PATH_MESSAGE, WINDOWS_PATH_RULE};

/// An event log channel name: `Application`, `System`, or a provider's channel such as
/// `Microsoft-Windows-IIS-Logging/Operational`.
pub const EVENT_CHANNEL_PATTERN: &str = r"^[A-Za-z0-9][-A-Za-z0-9 ._/]*$";
/// A file name filter with MS-DOS wildcards (`*.log`, `app-??.txt`): no path separators.
pub const FILE_FILTER_PATTERN: &str = r#"^[^\\/:"<>|]+$"#;

/// Logs to send to the container's output.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.iis) && self.iis) || (has(self.eventLog) && self.eventLog.size() > 0) || (has(self.files) && self.files.size() > 0)")
    .message("logging: name at least one source (iis: true, an eventLog channel or a files entry), or remove logging"))]
pub struct Logging {
    /// The IIS W3C log files (`C:\inetpub\logs\LogFiles`, every site). When `spec.command` is
    /// empty, the wrapped command is the IIS images' entrypoint, `C:\ServiceMonitor.exe w3svc`.
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iis: Option<bool>,

    /// Event log channels, at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::LOG_SOURCES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["channel"]))]
    pub event_log: Vec<EventLogChannel>,

    /// Directories of log files that the app writes, at most 16. LogMonitor sends the lines
    /// appended to matching files; it waits for a directory that does not exist yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = bounds::LOG_SOURCES))]
    pub files: Vec<LogFiles>,

    /// Where `LogMonitor.exe` is in the image. Default `C:\LogMonitor\LogMonitor.exe` (where
    /// Microsoft's images and documentation put it); its configuration is mounted beside it as
    /// `LogMonitorConfig.json`. The image must contain LogMonitor: the operator does not add it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(WINDOWS_PATH_RULE).message(WINDOWS_PATH_MESSAGE))]
    #[schemars(length(max = 240))]
    pub log_monitor_path: Option<String>,
}

/// One event log channel and the least severe level to send.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventLogChannel {
    /// The channel, such as `Application` or `System`.
    #[schemars(length(min = 1, max = 255), regex(pattern = EVENT_CHANNEL_PATTERN))]
    pub channel: String,
    /// Critical, Error, Warning, Information or Verbose. Default Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<EventLevel>,
}

/// Severity of Windows events.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventLevel {
    Critical,
    Error,
    Warning,
    Information,
    Verbose,
}

impl EventLevel {
    /// LogMonitor's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "Critical",
            Self::Error => "Error",
            Self::Warning => "Warning",
            Self::Information => "Information",
            Self::Verbose => "Verbose",
        }
    }
}

/// Log files in one directory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogFiles {
    /// The directory, such as `C:\app\logs`.
    #[x_kube(validation = Rule::new(WINDOWS_PATH_RULE).message(WINDOWS_PATH_MESSAGE))]
    #[schemars(length(min = 1, max = 240))]
    pub directory: String,
    /// Which files, with `*` and `?` wildcards. Default `*.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = FILE_FILTER_PATTERN))]
    pub filter: Option<String>,
    /// Files in subdirectories too. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_subdirectories: Option<bool>,
}
