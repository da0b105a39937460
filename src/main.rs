use clap::Parser;
use safereach::cli::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The demo prints a summary; its routine log lines would only bury it.
    let quiet = matches!(cli.command, Some(safereach::cli::Command::Demo { .. } | safereach::cli::Command::Bench(_)));
    safereach::logging::init(&cli.config.log_format, if quiet { "warn" } else { "info" });
    run(cli).await?;
    Ok(())
}
