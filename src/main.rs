//! The `weft` binary: `weft agent` runs an agent.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "weft", version, about = "A diskless, Kafka-compatible agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an agent: Kafka protocol in front, object storage and a metadata store behind.
    Agent(weft::config::AgentArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(args) => {
            let config = weft::config::AgentConfig::from_args(&args)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            weft::agent::run(config)?;
        }
    }
    Ok(())
}
