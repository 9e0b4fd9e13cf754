//! Logging. Human-readable lines on stderr, or one JSON object per line (`log_format = "json"`);
//! levels per module from `IDVAULT_LOG` (or `RUST_LOG`), default `info` for the server and `warn`
//! for one-shot commands.
//!
//! Lines are written by a thread of their own (tracing-appender's non-blocking writer), through a
//! buffer that is flushed whenever that thread has caught up: a request formats its line and hands
//! it over, and never waits on stderr (a pipe a log shipper reads slowly, a terminal). Under load,
//! many lines go out in one `write`; at rest, each line goes out as soon as it is made. Should the
//! writer fall [`BUFFERED_LINES`] lines behind, new lines are dropped rather than stall requests:
//! they are counted (`idvault_log_lines_dropped_total`). The guard [`init`] answers flushes what is
//! queued when the process ends normally; a crash loses the lines not yet written. Every line of a request carries its span: request id, method, route
//! template and project (see idvault_api::observe); in JSON under `span`. Nothing logged carries a secret: keys
//! and tokens are `SecretString`s and handlers skip their arguments.

use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

/// Dependencies whose logs below `info` print data idvault handles, whatever filter is asked for:
/// at `debug`, tokio-postgres logs every statement's bound parameters, which include the PKCE
/// verifiers of pending sign-ins, token ciphertexts and users' personal data. Capped at `info`
/// (the module that logs them too, since a directive naming it would take precedence).
const CAPPED_AT_INFO: &[&str] = &["tokio_postgres", "tokio_postgres::query"];

/// Lines queued for the log thread before new ones are dropped.
pub const BUFFERED_LINES: usize = 128_000;

/// Bytes gathered before a `write` to stderr, while the log thread has lines waiting.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

static DROPPED_LINES: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> =
    std::sync::OnceLock::new();

/// Log lines dropped since start because the log thread was [`BUFFERED_LINES`] behind.
pub fn dropped_lines() -> u64 {
    DROPPED_LINES.get().map_or(0, |c| c.dropped_lines() as u64)
}

/// Keeps the log thread; dropping it writes every queued line, then stops the thread.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

pub fn init(server: bool, format: crate::config::LogFormat) -> LogGuard {
    let default = if server { "info" } else { "warn" };
    let filter = std::env::var("IDVAULT_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // A directive for a target replaces the one the filter had for it (`tokio_postgres=debug`
    // included); the constant targets always parse.
    let filter = CAPPED_AT_INFO
        .iter()
        .filter_map(|target| format!("{target}=info").parse::<Directive>().ok())
        .fold(filter, EnvFilter::add_directive);
    // Colours only on a terminal: escape codes in a log file or collector are noise.
    // Said once at debug, so that a log at debug or below shows which filter produced it (and a
    // test can tell that its servers really log below info).
    let described = filter.to_string();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LINES)
        .lossy(true)
        .thread_name("idvault-log")
        .finish(std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, std::io::stderr()));
    let _ = DROPPED_LINES.set(writer.error_counter());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    let _ = match format {
        crate::config::LogFormat::Human => builder.try_init(),
        crate::config::LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
        }
    };
    tracing::debug!(filter = %described, "log filter in effect");
    guard
}
