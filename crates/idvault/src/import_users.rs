//! `idvault import --project P --users FILE.jsonl`: adds users with their tokens to an existing
//! project through core's bulk import (`idvault_core::user::import`). The file format is in
//! `cli::IMPORT_USERS_HELP` and `idvault_api::import`.

use std::io::{BufRead, BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use idvault_api::import::ImportLine;
use idvault_core::clock::{SharedClock, SystemClock};
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::user::import::{
    ImportOutcome, ImportPhase, ImportService, ImportSettings, ImportSource, ImportUser,
};
use idvault_crypto::Envelope;

use crate::backend::{Backend, DbTarget};
use crate::startup::open_keyring;

/// A JSON Lines file, read a batch of lines at a time; lines are parsed on the import's worker
/// threads.
pub struct JsonlSource {
    reader: BufReader<std::fs::File>,
    line: u64,
    now_secs: i64,
}

impl JsonlSource {
    pub fn open(path: &Path, now_secs: i64) -> std::io::Result<Self> {
        Ok(JsonlSource {
            reader: BufReader::with_capacity(1 << 20, std::fs::File::open(path)?),
            line: 0,
            now_secs,
        })
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::BadRequest(format!("reading the users file: {e}"))
}

impl ImportSource for JsonlSource {
    type Item = String;

    fn rewind(&mut self) -> Result<()> {
        self.reader.rewind().map_err(io_err)?;
        self.line = 0;
        Ok(())
    }

    fn next_batch(&mut self, max: usize) -> Result<Vec<(u64, String)>> {
        let mut out = Vec::with_capacity(max.min(1 << 16));
        while out.len() < max {
            let mut text = String::new();
            if self.reader.read_line(&mut text).map_err(io_err)? == 0 {
                break;
            }
            self.line += 1;
            if !text.trim().is_empty() {
                out.push((self.line, text));
            }
        }
        Ok(out)
    }

    fn parse(&self, line: String) -> Result<ImportUser> {
        ImportLine::parse(&line)?.into_import_user(self.now_secs)
    }
}

/// One bad line as printed: its number, the Descope error code and the reason.
pub fn describe_line(line: u64, error: &Error) -> String {
    let (_, code, _) = idvault_api::error::describe(error.code());
    format!("line {line}: {code} {error}")
}

pub async fn run(
    data_dir: &Path,
    db: &DbTarget,
    master_key: Option<&str>,
    project: &str,
    users: &Path,
    batch: usize,
) -> anyhow::Result<()> {
    let project = ProjectId::parse(project)?;
    let backend = Backend::open(data_dir, db, true, false).await?;
    let store = backend.store();
    if store.get_project(&project).await?.is_none() {
        anyhow::bail!("no project {project} in this database");
    }
    let keyring = open_keyring(master_key, data_dir, store.as_ref()).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let cipher = Arc::new(Envelope::new(keyring, store.clone(), clock.clone()));
    let service = ImportService::new(store, cipher, clock.clone());
    let mut source =
        JsonlSource::open(users, clock.now_secs()).with_context(|| format!("opening {}", users.display()))?;

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} users ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message("checking");
    let progress = |phase: ImportPhase, done: u64| {
        if phase == ImportPhase::Write && bar.message() != "writing" {
            bar.set_message("writing");
            bar.reset();
        }
        bar.set_position(done);
    };
    let settings = ImportSettings { batch_users: batch, ..ImportSettings::default() };
    let outcome = service.import(&project, &mut source, settings, &progress).await;
    bar.finish_and_clear();
    match outcome? {
        ImportOutcome::Imported(r) => {
            println!(
                "imported {} users, {} provider tokens, {} outbound tokens into project {project} \
                 (check {:.1} s, write {:.1} s)",
                r.users,
                r.tokens,
                r.outbound_tokens,
                r.check_time.as_secs_f64(),
                r.write_time.as_secs_f64()
            );
            Ok(())
        }
        ImportOutcome::Refused { errors, lines_checked } => {
            for e in &errors {
                eprintln!("{}", describe_line(e.line, &e.error));
            }
            anyhow::bail!(
                "{} bad line(s) (after checking {lines_checked} lines): nothing was written",
                errors.len()
            )
        }
    }
}
