//! The `weft` binary: `weft agent` runs an agent.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "weft", version, about = "A diskless, Kafka-compatible agent")]
struct Cli {
    /// Log format: `text` (human-readable, coloured on a terminal) or `json` (one object per
    /// line, for log shippers). Levels are chosen with `WEFT_LOG` (e.g. `info`,
    /// `weft=debug`).
    #[arg(long, global = true, env = "WEFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run an agent: Kafka protocol in front, object storage and a metadata store behind.
    Agent(weft::config::AgentArgs),
}

fn main() -> anyhow::Result<()> {
    weft::config::apply_env_aliases();
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match cli.command {
        Command::Agent(args) => {
            let config = weft::config::AgentConfig::from_args(&args)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            weft::agent::run(config)?;
        }
    }
    Ok(())
}
