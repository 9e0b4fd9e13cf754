//! The `idvault` binary: command-line entry point. Parses the command and hands over to
//! `startup` (the server) or `admin` (project and key management on the same data directory).

mod admin;
mod audit;
mod backend;
mod backup;
mod cli;
mod import_users;
mod ready;
mod startup;
mod telemetry;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();

    telemetry::init(cli.command.is_server());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let db = &backend::DbTarget {
            url: cli.database_url.clone(),
            tuning: backend::PgTuning {
                pool_size: cli.db_pool_size,
                connect_timeout: cli.db_connect_timeout,
                statement_timeout: cli.db_statement_timeout,
                sqlite_mmap_mib: cli.sqlite_mmap_mib,
            },
        };
        match cli.command {
            Command::Serve(args) => startup::serve(&cli.data_dir, db, cli.master_key.as_deref(), args).await,
            Command::Migrate => admin::migrate(&cli.data_dir, db).await,
            Command::Project(cmd) => admin::project(&cli.data_dir, db, cmd).await,
            Command::Key(cmd) => admin::key(&cli.data_dir, db, cmd).await,
            Command::Provider(cmd) => {
                admin::provider(&cli.data_dir, db, cli.master_key.as_deref(), cmd).await
            }
            Command::Keys(cmd) => admin::keys(&cli.data_dir, db, cli.master_key.as_deref(), cmd).await,
            Command::Healthcheck(args) => admin::healthcheck(args).await,
            Command::Audit(cli::AuditCommand::Export { project, since, out }) => {
                audit::export(&cli.data_dir, db, &project, since.as_deref(), out.as_deref()).await
            }
            Command::Backup { out } => backup::backup(&cli.data_dir, db, &out).await,
            Command::Restore { from } => {
                backup::restore(&cli.data_dir, db, cli.master_key.as_deref(), &from).await
            }
            Command::Export { project, out } => admin::export(&cli.data_dir, db, &project, &out).await,
            Command::Import(args) => match (&args.input, &args.users, &args.project) {
                (_, Some(users), Some(project)) => {
                    import_users::run(
                        &cli.data_dir,
                        db,
                        cli.master_key.as_deref(),
                        project,
                        users,
                        args.batch,
                    )
                    .await
                }
                (Some(input), _, _) => admin::import(&cli.data_dir, db, input).await,
                _ => Err(anyhow::anyhow!("give --in FILE, or --project P --users FILE.jsonl")),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
