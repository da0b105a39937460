//! The command line (contract: API.md, "Command line").

pub mod bench;
pub mod demo;
mod error;

pub use error::{CLI_ACTOR, CliError};

use std::io::{BufRead, Read};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, Role};
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{HashKeySource, Store};

#[derive(Debug, Parser)]
#[command(name = "safereach", version, about = "Safe-contact outreach gateway for a victim support service")]
// The settings are flags of every command, before or after its name.
#[command(mut_args(|arg| arg.global(true)))]
pub struct Cli {
    #[command(flatten, next_help_heading = "Settings")]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API, webhooks, staff pages and the worker in one process (the default).
    Serve(RunArgs),
    /// Only the HTTP side.
    Api(RunArgs),
    /// Only the queue worker.
    Worker(RunArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Staff accounts.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Message templates and their approval.
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Jobs the worker gave up on, for staff to look at and requeue.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// The monthly performance report (or the quarterly roll-up with --quarter).
    Report {
        /// The month, YYYY-MM.
        #[arg(long, required_unless_present = "quarter", conflicts_with = "quarter")]
        month: Option<String>,
        /// The quarter, YYYY-QN.
        #[arg(long)]
        quarter: Option<String>,
        #[arg(long, value_parser = ["json", "csv"], default_value = "json")]
        format: String,
    },
    /// The key of the phone and address hashes.
    HashKey {
        #[command(subcommand)]
        command: HashKeyCommand,
    },
    /// Cases (administration).
    Cases {
        #[command(subcommand)]
        command: CasesCommand,
    },
    /// Measure throughput and latency against baselines taken in the same run (scripts/bench.sh).
    Bench(bench::BenchArgs),
    /// Set up a demonstration on the embedded default, submit example jobs, and keep serving.
    Demo {
        /// Where the demo keeps its database and outbox (emptied first).
        #[arg(long, default_value = "./demo")]
        dir: PathBuf,
        /// Exit after printing the summary instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Don't apply migrations on start-up.
    #[arg(long)]
    pub no_migrate: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new API key once, alone on the last line of stdout (stored hashed).
    Create {
        #[arg(long)]
        name: String,
        /// Comma list of outreach:write, cases:read, reports:read, cases:erase.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A test key: its jobs are decided and recorded but sent only to the sandbox, marked
        /// `test` and left out of reports (scopes outreach:write and cases:read only).
        #[arg(long)]
        test: bool,
        /// Requests a minute the key may make (per API process).
        #[arg(long, default_value_t = crate::store::DEFAULT_RATE_LIMIT, value_parser = clap::value_parser!(u32).range(1..))]
        rate_limit: u32,
    },
    /// List the keys: id, name, scopes, when created and revoked (never the key itself).
    List,
    /// Revoke a key by its id (from `keys list`): it is refused from then on.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum HashKeyCommand {
    /// Print the hash key an older version kept inside the database (Postgres), to set as
    /// SAFEREACH_HASH_KEY; the next start with it deletes it from the database.
    Export,
}

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Erase a case on request (right to erasure): only anonymous counts are left.
    Erase {
        case_ref: String,
        /// Who asked, for the timeline (e.g. a staff username).
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff account; the password comes from SAFEREACH_PASSWORD or stdin.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = ["author", "approver", "admin"])]
        role: String,
        /// Leave an existing account as it is (and succeed): for set-up scripts run on every start.
        #[arg(long)]
        if_missing: bool,
    },
    /// Take a member of staff's second factor off (a lost device): their sessions end and they set
    /// up a new one at their next sign-in. Recorded in the audit table.
    #[command(name = "reset-2fa")]
    Reset2fa {
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Load template sources from DIR (or, with --defaults, the wording built into the binary)
    /// as new versions submitted for approval by staff U.
    Load {
        #[arg(required_unless_present = "defaults", conflicts_with = "defaults")]
        dir: Option<PathBuf>,
        /// The default wording built into the binary (message_templates/ as it was built).
        #[arg(long)]
        defaults: bool,
        #[arg(long)]
        author: String,
    },
    /// Approve submitted versions as staff V (refused for a version V wrote). V's password comes
    /// from SAFEREACH_PASSWORD or the first line of stdin. What will be approved is listed first;
    /// `--all` then asks for a `y` (the next line of stdin) unless `--yes`.
    Approve {
        /// The template to approve (every channel of it).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long = "as")]
        approver: String,
        /// Approve what `--all` lists without asking (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Each template, channel, its versions and their state.
    List,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// How many jobs are dead-lettered, and the oldest of them.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put a dead-lettered job back on the queue (through the outbox; recorded on its case).
    Requeue {
        /// The outreach id (out_…).
        id: String,
    },
}

async fn open_store(config: &Config) -> Result<Store, CliError> {
    Ok(Store::open(&config.database_url, true, &HashKeySource::from_config(config)).await?)
}

/// A password from SAFEREACH_PASSWORD, else the first line of `input`.
fn read_password(input: &mut impl std::io::BufRead) -> Result<String, CliError> {
    if let Ok(p) = std::env::var("SAFEREACH_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let config = cli.config;
    config.check()?;
    // One clock for every command, as the app's (SAFEREACH_CLOCK when set). Lazy: the commands
    // that start the app use the app's own, and the shifted clock's warning is logged once.
    let start = config.clock;
    let clock = std::cell::LazyCell::new(|| Clock::configured(start));
    let now = || clock.now_ms();
    match cli.command.unwrap_or(Command::Serve(RunArgs { no_migrate: false })) {
        Command::Serve(args) => serve(config, Role::Serve, args).await,
        Command::Api(args) => serve(config, Role::Api, args).await,
        Command::Worker(args) => serve(config, Role::Worker, args).await,
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys { command: KeysCommand::Create { name, scopes, test, rate_limit } } => {
            if let Some(bad) = scopes.iter().find(|s| !crate::http::auth::ALL_SCOPES.contains(&s.as_str())) {
                return Err(CliError::Usage(format!(
                    "unknown scope {bad:?}; use {}",
                    crate::http::auth::ALL_SCOPES.join(",")
                )));
            }
            if scopes.is_empty() {
                return Err(CliError::Usage("give at least one scope with --scopes".into()));
            }
            if test && let Some(bad) = scopes.iter().find(|s| !crate::http::auth::TEST_KEY_SCOPES.contains(&s.as_str()))
            {
                return Err(CliError::Usage(format!(
                    "a test key may not have the scope {bad:?}; use {}",
                    crate::http::auth::TEST_KEY_SCOPES.join(",")
                )));
            }
            let store = open_store(&config).await?;
            let options = crate::store::KeyOptions { test, rate_limit };
            let key = crate::service::accounts::create_api_key_with(&store, &name, &scopes, options, now(), CLI_ACTOR).await?;
            let kind = if test { "Test API key" } else { "API key" };
            println!("{kind} {name:?} with scopes {}, {rate_limit} requests a minute (shown once):", scopes.join(","));
            println!("{key}");
            Ok(())
        }
        Command::Keys { command: KeysCommand::List } => {
            let store = open_store(&config).await?;
            let keys = store.api_keys().await?;
            println!("{} API key(s)", keys.len());
            for k in keys {
                let revoked =
                    k.revoked_at.map_or("in use".to_string(), |t| format!("revoked {}", crate::time::rfc3339_ms(t)));
                println!(
                    "{}\t{}\t{}\t{}/min{}\tcreated {}\t{revoked}",
                    k.id,
                    k.name,
                    k.scopes,
                    k.rate_limit,
                    if k.test.0 { "\ttest" } else { "" },
                    crate::time::rfc3339_ms(k.created_at)
                );
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::Revoke { id } } => {
            let store = open_store(&config).await?;
            if !crate::service::accounts::revoke_api_key(&store, &id, now(), CLI_ACTOR).await? {
                return Err(CliError::Usage(format!("no API key {id} in use")));
            }
            println!("API key {id} revoked");
            Ok(())
        }
        Command::Staff { command: StaffCommand::Create { username, role, if_missing } } => {
            let store = open_store(&config).await?;
            if if_missing && let Some(existing) = store.staff(&username).await? {
                println!("staff account {username} exists (role {}): left as it is", existing.role);
                return Ok(());
            }
            let password = match std::env::var("SAFEREACH_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut p = String::new();
                    std::io::stdin().read_to_string(&mut p)?;
                    p.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            crate::service::accounts::create_account(&store, &username, &role, &password, now(), CLI_ACTOR)
                .await
                .map_err(CliError::Usage)?;
            println!("staff account {username} created with role {role}");
            Ok(())
        }
        Command::Staff { command: StaffCommand::Reset2fa { username } } => {
            let store = open_store(&config).await?;
            if !crate::service::two_factor::reset(&store, &username, CLI_ACTOR, now()).await? {
                return Err(CliError::Usage(format!("{username} has no second factor to reset")));
            }
            println!("second factor of {username} reset: they set up a new one at their next sign-in");
            Ok(())
        }
        Command::Templates { command } => {
            let store = open_store(&config).await?;
            templates(&store, command, now()).await
        }
        Command::DeadLetters { command } => {
            let store = open_store(&config).await?;
            dead_letters(&store, command, now()).await
        }
        Command::Report { month, quarter, format } => {
            let period = match (month, quarter) {
                (Some(m), _) => crate::reports::Period::parse_month(&m)
                    .ok_or_else(|| CliError::Usage(format!("--month {m:?} is not YYYY-MM")))?,
                (None, Some(q)) => crate::reports::Period::parse_quarter(&q)
                    .ok_or_else(|| CliError::Usage(format!("--quarter {q:?} is not YYYY-QN")))?,
                (None, None) => return Err(CliError::Usage("give --month YYYY-MM or --quarter YYYY-QN".into())),
            };
            let store = open_store(&config).await?;
            let policy = crate::domain::policy::PolicyConfig { quiet_hours: config.quiet_hours, ..Default::default() };
            let report =
                crate::reports::report_with_staffed_hours(&store, &policy, &config.staffed_hours, period).await?;
            if format == "csv" {
                print!("{}", crate::reports::to_csv(&report));
            } else {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            }
            Ok(())
        }
        Command::Cases { command: CasesCommand::Erase { case_ref, actor } } => {
            let store = open_store(&config).await?;
            let outbox = std::path::Path::new(&config.outbox_dir);
            match crate::service::erasure::erase_case(&store, outbox, &case_ref, now(), &format!("cli:{actor}")).await? {
                Some(_) => println!("case {case_ref} erased: only anonymous counts are left"),
                None => return Err(CliError::Usage(format!("no case {case_ref}"))),
            }
            Ok(())
        }
        Command::HashKey { command: HashKeyCommand::Export } => match Store::legacy_hash_key(&config.database_url).await? {
            Some(key) => {
                println!("{key}");
                Ok(())
            }
            None => Err(CliError::Usage(
                "this database keeps no hash key inside it (it is already outside, in SAFEREACH_HASH_KEY or the key file)".into(),
            )),
        },
        Command::Demo { dir, no_serve } => demo::run(config, &dir, !no_serve).await,
        Command::Bench(args) => bench::run(config, args).await,
    }
}

/// Listen at once, then connect: a database or queue that is down is waited for (503 meanwhile).
/// The "listening" line is printed once the process serves (scripts and tests wait for it).
async fn serve(config: Config, role: Role, args: RunArgs) -> Result<(), CliError> {
    let starting = app::Starting::listen(config, role).await?;
    let addr = starting.addr;
    let running = tokio::select! {
        running = starting.run_when_ready(!args.no_migrate) => running?,
        _ = app::wait_for_signal() => return Ok(()),
    };
    if let Some(addr) = addr {
        println!("safereach listening on http://{addr}");
    }
    running.until_signal().await;
    Ok(())
}

async fn dead_letters(store: &Store, command: DeadLettersCommand, now: i64) -> Result<(), CliError> {
    use crate::service::dead_letters::{Requeue, requeue_dead_letter};
    match command {
        DeadLettersCommand::List { limit } => {
            println!("{} dead-lettered job(s)", store.dead_letter_count().await?);
            for d in store.dead_letters(limit.clamp(1, 10_000)).await? {
                println!(
                    "{}  {:<16} {:<16} {:<6} attempts {:<2} {:<17} {}",
                    d.outreach_id,
                    d.case_ref,
                    d.kind,
                    d.channel.as_deref().unwrap_or("-"),
                    d.attempts,
                    d.reason.as_deref().unwrap_or("-"),
                    crate::time::rfc3339_ms(d.at)
                );
            }
            Ok(())
        }
        DeadLettersCommand::Requeue { id } => match requeue_dead_letter(store, &id, now, "cli").await? {
            Requeue::Requeued(job) => {
                println!("{} requeued (case {})", job.id, job.case_ref);
                Ok(())
            }
            Requeue::NotFound => Err(CliError::Usage(format!("no outreach job {id}"))),
            Requeue::NotDeadLettered(status) => {
                Err(CliError::Usage(format!("{id} is {status}, not dead-lettered: nothing to requeue")))
            }
        },
    }
}

async fn templates(store: &Store, command: TemplatesCommand, now: i64) -> Result<(), CliError> {
    use crate::service::templates as workflow;
    match command {
        TemplatesCommand::Load { dir, defaults, author } => {
            let loaded = match dir {
                Some(dir) if !defaults => workflow::load_dir(store, &dir, &author, now).await?,
                _ => workflow::load_defaults(store, &author, now).await?,
            };
            for line in loaded {
                println!("{line}");
            }
        }
        TemplatesCommand::Approve { name, all, approver, yes } => {
            let waiting = workflow::waiting(store, name.as_deref()).await?;
            if waiting.is_empty() {
                println!("nothing was waiting for approval");
                return Ok(());
            }
            println!("waiting for approval by {approver}:");
            for v in &waiting {
                println!("  {}", workflow::describe(v));
            }
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let password = read_password(&mut input)?;
            if !crate::service::accounts::authenticate(store, &approver, &password).await? {
                return Err(CliError::Usage(format!("the password is not {approver}'s: nothing was approved")));
            }
            if all && !yes {
                println!("approve these {} version(s)? [y/N]", waiting.len());
                let mut answer = String::new();
                input.read_line(&mut answer)?;
                if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
                    return Err(CliError::Usage("not confirmed: nothing was approved".into()));
                }
            }
            for line in workflow::approve_listed(store, &waiting, &approver, now).await? {
                println!("{line}");
            }
        }
        TemplatesCommand::List => {
            for v in store.template_versions().await? {
                println!(
                    "{:<28} {:<7} {:<3} v{:<3} {:<10} by {}{}",
                    v.name,
                    v.channel,
                    v.language,
                    v.version,
                    v.state,
                    v.author,
                    v.decided_by.map(|d| format!(", decided by {d}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
