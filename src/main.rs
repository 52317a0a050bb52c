//! The `winapp-operator` binary: `run` (the controller), `render` (offline preview), `crd`.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use winapp_operator::{crd, render};

#[derive(Parser)]
#[command(version, about = "Runs Windows workloads described by WindowsApp resources on hybrid clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print every object that the WindowsApps in a file become, in apply order, without a cluster.
    Render {
        /// YAML file with one or more WindowsApps; `-` reads standard input.
        #[arg(short = 'f', long = "filename")]
        file: String,
        /// Namespace for WindowsApps that name none.
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// Print the WindowsApp CustomResourceDefinition.
    Crd,
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
        Command::Render { file, namespace } => render_cmd(&file, &namespace),
    }
}

fn render_cmd(file: &str, namespace: &str) -> ExitCode {
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
    match render::render(&input, namespace) {
        Ok(rendered) => {
            for s in &rendered.skipped {
                eprintln!("note: {file}: {s} is not a WindowsApp; left out");
            }
            print!("{}", rendered.yaml);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("error: {file}: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
