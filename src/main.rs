use clap::Parser;
use safereach::cli::{Cli, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    safereach::logging::init(&cli.config.log_format);
    run(cli).await?;
    Ok(())
}
