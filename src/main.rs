//! The `winapp-operator` binary: `run` (the controller), `render` (offline preview), `crd`,
//! `doctor` (pre-flight of a cluster).

use std::io::Read;
use std::process::ExitCode;

use clap::builder::TypedValueParser;
use clap::{Parser, Subcommand};

use winapp_operator::controller::lists::Lists;
use winapp_operator::controller::watch::Scope;
use winapp_operator::policy::{Policy, Rule, TaintGrant};
use winapp_operator::run::{RunConfig, run};
use winapp_operator::validate::WarmUpDefault;
use winapp_operator::{crd, doctor, render};

#[derive(Parser)]
#[command(version, about = "Runs Windows workloads described by WindowsApp resources on hybrid clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every object that the WindowsApps in a file become, in apply order, without a cluster.
    /// Each WindowsApp is first checked as the API server checks it (the CRD's schema and CEL
    /// rules, unknown fields refused), then by the operator's own rules, and the objects it
    /// becomes as the API server would check them; every problem is printed as
    /// `error: FILE:LINE:COLUMN: document N (WindowsApp NAMESPACE/NAME): FIELD: what to do`.
    #[command(after_long_help = render::help())]
    Render {
        /// YAML file with one or more WindowsApps; `-` reads standard input.
        #[arg(short = 'f', long = "filename")]
        file: String,
        /// Namespace for WindowsApps that name none.
        #[arg(short, long, default_value = "default")]
        namespace: String,
        /// Allow this rule of the platform's policy, as the operator's flag of the same name does
        /// (repeatable, or comma-separated; `--allow-pod-override` is an old name of it). What a
        /// Namespace's annotation winapp.dev/allow grants, render cannot know: name it here.
        #[arg(long = "allow", alias = "allow-pod-override", value_name = "RULE", value_delimiter = ',', value_parser = rule_parser())]
        allow: Vec<Rule>,
        /// Allow tolerating this taint (KEY=VALUE, or KEY for any value), as the operator's flag
        /// of the same name does (repeatable, or comma-separated).
        #[arg(long = "allow-taint", value_name = "KEY[=VALUE]", value_delimiter = ',')]
        allow_taint: Vec<TaintGrant>,
        /// Warm images up for apps that do not set spec.warmUp.enabled, as the operator's flag of
        /// the same name does: their warm-up DaemonSet is printed too.
        #[arg(long)]
        warm_up: bool,
        /// The warm-up pods' container image, as the operator's flag of the same name.
        #[arg(long, default_value = winapp_operator::validate::defaults::WARM_UP_PAUSE_IMAGE)]
        warm_up_pause_image: String,
    },
    /// Print the WindowsApp CustomResourceDefinition.
    Crd,
    /// Run the operator: reconcile WindowsApps until SIGTERM.
    Run(RunArgs),
    /// Check a cluster for WindowsApps, before and after installing the operator: Windows nodes,
    /// taints, runtimes, gMSA, SMB CSI driver, Pod Security and the operator's own installation.
    #[command(after_help = doctor::HELP)]
    Doctor(DoctorArgs),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Output: `text` (one line per finding, by section, and a summary) or `json` (for tools).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// A Windows release that must have a Ready, schedulable node: ltsc2019, ltsc2022, ltsc2025
    /// (or its build, such as 10.0.26100). Repeatable.
    #[arg(long = "windows-version", value_name = "RELEASE", value_parser = doctor::parse_windows_version)]
    windows_versions: Vec<winapp_operator::api::WindowsVersion>,
    /// Look for the operator's Deployment only in this namespace (default: every namespace).
    #[arg(long, value_name = "NAMESPACE")]
    operator_namespace: Option<String>,
    /// Count warnings as errors for the exit code.
    #[arg(long)]
    strict: bool,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then the in-cluster account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Context of the kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Reconcile only WindowsApps matching this label selector.
    #[arg(long)]
    selector: Option<String>,
    /// Run as the shard NAME (with its own --selector and --lease-name): every child applied
    /// carries the label winapp.dev/shard=NAME, and only children with it are cached, so that
    /// each shard holds the children of its own apps alone.
    #[arg(long, value_name = "NAME", value_parser = |s: &str| winapp_operator::controller::shard::parse(s))]
    shard: Option<String>,
    /// How the caches of apps and children make their first list: a streaming list (one watch
    /// that sends every object, Kubernetes 1.32+ except 1.33) where the API server serves it,
    /// asked once at start; or always one of the two.
    #[arg(long, value_enum, default_value_t = Lists::Auto)]
    initial_list: Lists,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: std::net::SocketAddr,
    /// Elect a leader on a Lease so that only one replica reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "winapp-operator")]
    lease_name: String,
    /// Identity in the leader election (default: pod name, or host name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Reconciles that may run at once (each app is reconciled by one at a time).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Seconds a rollout may make no progress before the operator reads the app's pods and their
    /// events to report why they are not available (refused pod creations are reported at once).
    #[arg(long, default_value_t = 30)]
    diagnose_after_seconds: u64,
    /// Milliseconds the watch events of one app are gathered into a single reconcile (applying an
    /// app's children sets off a burst of them). 0 reconciles on every event.
    #[arg(long, default_value_t = 500)]
    debounce_ms: u64,
    /// Allow this rule of the platform's policy for every app (repeatable, or comma-separated;
    /// `--allow-pod-override` is an old name of it); the rules in the environment variables
    /// WINAPP_ALLOW and WINAPP_ALLOW_POD_OVERRIDES (comma-separated) are allowed too. By default
    /// every power beyond the app's namespace is refused (Stalled, NotAllowed or
    /// OverrideNotAllowed); a Namespace's annotation winapp.dev/allow grants rules to its apps.
    #[arg(long = "allow", alias = "allow-pod-override", value_name = "RULE", value_delimiter = ',', value_parser = rule_parser())]
    allow: Vec<Rule>,
    /// Allow every app to tolerate this taint beyond the Windows pool conventions: KEY=VALUE, or
    /// KEY for any value (repeatable, or comma-separated; also WINAPP_ALLOW_TAINTS). A Namespace's
    /// annotation winapp.dev/allowed-taints grants taints to its apps.
    #[arg(long = "allow-taint", value_name = "KEY[=VALUE]", value_delimiter = ',')]
    allow_taint: Vec<TaintGrant>,
    /// Apps that may roll out at once a change of their pods that comes from the operator (a new
    /// default after an upgrade, a change of --pod-annotation) and not from the app; the others
    /// keep their running pods and wait for a turn (condition PodTemplateCurrent). The apps' own
    /// changes are never delayed. 0: no limit.
    #[arg(long, env = "WINAPP_MAX_OPERATOR_ROLLOUTS", default_value_t = 10)]
    max_operator_rollouts: usize,
    /// An annotation the platform team puts on every app's pods, KEY=VALUE (repeatable, or
    /// comma-separated; also WINAPP_POD_ANNOTATIONS). It wins over an app's own. A change rolls
    /// every app's pods, paced by --max-operator-rollouts.
    #[arg(long = "pod-annotation", env = "WINAPP_POD_ANNOTATIONS", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = pod_annotation)]
    pod_annotation: Vec<(String, String)>,
    /// Warm a new image up on the nodes before an app's Deployment rolls to it, for apps that do
    /// not set spec.warmUp.enabled (also WINAPP_WARM_UP): a DaemonSet <app>-warmup pulls it on
    /// every node the pods may run on, and the Deployment keeps its running image until then.
    #[arg(long, env = "WINAPP_WARM_UP", default_value_t = false)]
    warm_up: bool,
    /// The image of the warm-up pods' container, which keeps the pulled image on the node: a
    /// pause image with a variant for each Windows Server build of the pool (also
    /// WINAPP_WARM_UP_PAUSE_IMAGE).
    #[arg(long, env = "WINAPP_WARM_UP_PAUSE_IMAGE", default_value = winapp_operator::validate::defaults::WARM_UP_PAUSE_IMAGE)]
    warm_up_pause_image: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Seconds a new leader may take to sync its caches before /healthz fails.
    #[arg(long, default_value_t = 120, hide = true)]
    sync_deadline_seconds: u64,
    /// Shut down when the parent process exits (for tests and scripts that start the operator).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

/// Parses a policy rule name; `--help` lists every rule with what it refuses.
fn rule_parser() -> impl TypedValueParser<Value = Rule> {
    clap::builder::PossibleValuesParser::new(
        Rule::ALL.iter().map(|r| clap::builder::PossibleValue::new(r.name()).help(r.summary())),
    )
    .try_map(|s| s.parse::<Rule>())
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: could not serialize the CRD: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Render { file, namespace, allow, allow_taint, warm_up, warm_up_pause_image } => {
            let options = render::Options {
                policy: Policy::allowing(allow).with_taints(allow_taint),
                warm_up: WarmUpDefault { enabled: warm_up, pause_image: warm_up_pause_image },
                ..render::Options::default()
            };
            render_cmd(&file, &namespace, &options)
        }
        Command::Run(args) => run_cmd(args),
        Command::Doctor(args) => doctor_cmd(args),
    }
}

fn doctor_cmd(args: DoctorArgs) -> ExitCode {
    let json = args.output == OutputFormat::Json;
    let options = doctor::Options {
        kubeconfig: args.kubeconfig,
        context: args.context,
        checks: doctor::CheckOptions {
            windows_versions: args.windows_versions,
            operator_namespace: args.operator_namespace,
        },
    };
    let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(doctor::run(&options)),
        Err(e) => Err(doctor::DoctorError::Internal(format!("cannot start the async runtime: {e}"))),
    };
    match outcome {
        Ok(findings) => {
            if json {
                println!("{}", doctor::output::json(&findings, args.strict));
            } else {
                print!("{}", doctor::output::text(&findings, args.strict));
            }
            ExitCode::from(doctor::Summary::of(&findings).exit_code(args.strict))
        }
        Err(e) => {
            eprintln!("error: {e}");
            if json {
                println!("{}", doctor::output::json_error(&e));
            }
            ExitCode::from(doctor::EXIT_CANNOT_RUN)
        }
    }
}

fn render_cmd(file: &str, namespace: &str, options: &render::Options) -> ExitCode {
    let input = if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(file)
    };
    let input = match input {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let source = if file == "-" { "<stdin>" } else { file };
    match render::render_with(&input, namespace, options) {
        Ok(rendered) => {
            for w in rendered.warnings.iter().chain(&rendered.advice) {
                eprintln!("warning: {source}:{}: {}", w.pos, w.message);
            }
            for s in &rendered.skipped {
                eprintln!("note: {source}: {s} is not a WindowsApp; left out");
            }
            print!("{}", rendered.yaml);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for w in render::warnings(&input, namespace) {
                eprintln!("warning: {source}:{}: {}", w.pos, w.message);
            }
            for e in errors {
                match e.pos() {
                    Some(pos) => eprintln!("error: {source}:{pos}: {e}"),
                    None => eprintln!("error: {source}: {e}"),
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// Environment variables with more rules to allow, comma-separated (for a kustomize patch); the
/// second is the old name of the first.
const ALLOW_ENV: [&str; 2] = ["WINAPP_ALLOW", "WINAPP_ALLOW_POD_OVERRIDES"];
/// Environment variable with more taints to allow, comma-separated.
const ALLOW_TAINTS_ENV: &str = "WINAPP_ALLOW_TAINTS";

/// The entries of a comma-separated environment variable, each parsed.
fn env_list<T: std::str::FromStr>(name: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    let value = std::env::var(name).unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.parse::<T>().map_err(|e| format!("{name}: {e}")))
        .collect()
}

/// The operator's policy: `--allow` and `--allow-taint`, and the same from the environment.
fn operator_policy(rules: Vec<Rule>, taints: Vec<TaintGrant>) -> Result<Policy, String> {
    let mut all_rules = rules;
    for name in ALLOW_ENV {
        all_rules.extend(env_list::<Rule>(name)?);
    }
    let mut all_taints = taints;
    all_taints.extend(env_list::<TaintGrant>(ALLOW_TAINTS_ENV)?);
    Ok(Policy::allowing(all_rules).with_taints(all_taints))
}

/// Parses `KEY=VALUE` of `--pod-annotation`: a Kubernetes annotation key (optional DNS prefix
/// and `/`, a name of letters, digits, `-`, `_` and `.`), not under the operator's own prefix.
fn pod_annotation(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg.split_once('=').ok_or_else(|| format!("{arg:?}: write KEY=VALUE"))?;
    let (prefix, name) = key.rsplit_once('/').map_or(("", key), |(p, n)| (p, n));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok =
        prefix.len() <= 253 && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c));
    if !name_ok || !prefix_ok || (key.contains('/') && prefix.is_empty()) {
        return Err(format!(
            "{key:?} is not an annotation key: [prefix/]name, the name up to 63 letters, digits, '-', '_' or '.'"
        ));
    }
    if prefix == "winapp.dev" || prefix.ends_with(".winapp.dev") {
        return Err(format!("{key:?}: the prefix winapp.dev is the operator's own; choose another"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn run_cmd(args: RunArgs) -> ExitCode {
    let pod_policy = match operator_policy(args.allow, args.allow_taint) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: in `kubectl logs`, a file or a pipe they are escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!("{host}-{}", std::process::id())
    });
    let config = RunConfig {
        scope: Scope {
            namespace: args.namespace,
            selector: args.selector,
            shard: args.shard,
            lists: args.initial_list,
        },
        http_addr: args.http_addr,
        leader_election: args.leader_elect,
        lease_namespace: args.lease_namespace,
        lease_name: args.lease_name,
        identity,
        exit_with_parent: args.exit_with_parent,
        concurrency: args.concurrency,
        sync_deadline: std::time::Duration::from_secs(args.sync_deadline_seconds),
        diagnose_after: std::time::Duration::from_secs(args.diagnose_after_seconds),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        pod_policy,
        max_operator_rollouts: args.max_operator_rollouts,
        pod_annotations: args.pod_annotation.into_iter().collect(),
        warm_up: WarmUpDefault { enabled: args.warm_up, pause_image: args.warm_up_pause_image },
    };
    // One thread for the operator's runtime. The controller's stream, and with it every watch and
    // reconcile, is polled by `block_on` on this thread anyway; only the HTTP server, the signal
    // handler and some housekeeping were spawned onto workers. The operator waits on the API
    // server nearly all the time (5 s of CPU to bring 1,000 apps to Ready in 4 minutes,
    // scripts/bench), and worker threads cost memory: glibc gives each allocating thread an arena
    // of its own. A restart over 1,000 apps peaked 2.5 MiB lower with one thread (39.6/38.9 MiB
    // against 41.8/41.6) and took less CPU. Leader election is the exception: it runs on a thread
    // and runtime of its own (`election`), so that a busy reconcile cannot starve the renewals.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pod_annotation;

    #[test]
    fn pod_annotations_are_keys_of_kubernetes_and_not_the_operators_own() {
        assert_eq!(pod_annotation("logs.example.com/tier=gold"), Ok(("logs.example.com/tier".into(), "gold".into())));
        assert_eq!(pod_annotation("team=a=b"), Ok(("team".into(), "a=b".into())), "the value may hold =");
        assert_eq!(pod_annotation("empty="), Ok(("empty".into(), String::new())));
        for bad in ["no-value", "=x", "/x=1", "Bad.Prefix/x=1", "a/-x=1", "winapp.dev/x=1", "sub.winapp.dev/x=1"] {
            assert!(pod_annotation(bad).is_err(), "{bad} accepted");
        }
    }
}
