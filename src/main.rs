//! The `weft` binary: `weft agent` runs an agent.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_decommits` in mimalloc.h's `mi_option_e` (the number is part of its ABI).
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

/// Freed memory is purged with a reset (MADV_FREE) instead of a decommit: the kernel takes the
/// pages back only under memory pressure. Each flush allocates a segment buffer of megabytes,
/// and with decommits every one of them was faulted in and zeroed page by page again, half of
/// the agent's CPU at full produce throughput (perf/runs/2026-11-23-flamegraph).
fn configure_allocator() {
    // SAFETY: sets one of mimalloc's documented options; called before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
}

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
    configure_allocator();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the option number: mimalloc documents `purge_decommits` as on (1) by default.
    #[test]
    fn allocator_option_numbers_match_mimalloc() {
        if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_some() {
            return;
        }
        // SAFETY: reads and sets documented options.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DECOMMITS), 1);
            configure_allocator();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DECOMMITS), 0);
        }
    }
}
