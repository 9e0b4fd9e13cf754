//! The `idvault` binary: command-line entry point. Parses the command and hands over to
//! `startup` (the server) or `admin` (project and key management on the same data directory).

mod admin;
mod audit;
mod backend;
mod backup;
mod cli;
mod config;
mod import_users;
mod ready;
mod startup;
mod telemetry;
mod telemetry_metrics;
mod transfer;

use std::process::ExitCode;

use clap::Parser;
use secrecy::ExposeSecret;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "idvault", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Command::Config(cli::ConfigCommand::Reference) = cli.command {
        return match config::reference(&<Cli as clap::CommandFactory>::command()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let serve_flags = match &cli.command {
        Command::Serve(args) => Some(&**args),
        Command::Config(cli::ConfigCommand::Check(args)) => Some(&**args),
        _ => None,
    };
    let loaded =
        match config::load(cli.config.as_deref(), &cli::Flags { global: &cli.global, serve: serve_flags }) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    if let Command::Config(cli::ConfigCommand::Check(_)) = cli.command {
        return match loaded.render() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = loaded.config;

    // Kept until the runtime has stopped: dropping it writes the log lines still queued.
    let log_guard = telemetry::init(cli.command.is_server(), config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let db = &backend::DbTarget {
            url: config.database_url.as_ref().map(|u| u.expose_secret().to_owned()),
            tuning: backend::PgTuning {
                pool_size: config.db_pool_size,
                connect_timeout: config.db_connect_timeout,
                statement_timeout: config.db_statement_timeout,
                sqlite_mmap_mib: config.sqlite_mmap_mib,
            },
        };
        let master_key = config.master_key.as_ref().map(|k| k.expose_secret());
        let data_dir = &config.data_dir;
        match cli.command {
            Command::Serve(_) => startup::serve(&config, db).await,
            Command::Migrate => admin::migrate(data_dir, db).await,
            Command::Project(cmd) => admin::project(data_dir, db, cmd).await,
            Command::Key(cmd) => admin::key(data_dir, db, cmd).await,
            Command::Provider(cmd) => admin::provider(data_dir, db, master_key, cmd).await,
            Command::Keys(cmd) => admin::keys(data_dir, db, master_key, cmd).await,
            Command::Healthcheck(args) => admin::healthcheck(args).await,
            Command::Audit(cli::AuditCommand::Export { project, since, out }) => {
                audit::export(data_dir, db, &project, since.as_deref(), out.as_deref()).await
            }
            Command::Backup { out } => backup::backup(data_dir, db, &out).await,
            Command::Restore { from } => backup::restore(data_dir, db, master_key, &from).await,
            Command::Export { project, out } => admin::export(data_dir, db, &project, &out).await,
            Command::Import(args) => match (&args.input, &args.users, &args.project) {
                (_, Some(users), Some(project)) => {
                    import_users::run(data_dir, db, master_key, project, users, args.batch).await
                }
                (Some(input), _, _) => admin::import(data_dir, db, input).await,
                _ => Err(anyhow::anyhow!("give --in FILE, or --project P --users FILE.jsonl")),
            },
            Command::Config(_) | Command::Completions { .. } => Ok(()),
        }
    });
    // The runtime's tasks may still log while it shuts down; then every queued line is written,
    // before the error (if any) that ends the process.
    drop(runtime);
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
