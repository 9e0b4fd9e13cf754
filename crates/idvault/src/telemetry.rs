//! Logging. Human-readable lines on stderr, or one JSON object per line (`log_format = "json"`);
//! levels per module from `IDVAULT_LOG` (or `RUST_LOG`), default `info` for the server and `warn`
//! for one-shot commands. Every line of a request carries its span: request id, method, route
//! template and project (see idvault_api::observe); in JSON under `span`. Nothing logged carries a secret: keys
//! and tokens are `SecretString`s and handlers skip their arguments.

use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

/// Dependencies whose logs below `info` print data idvault handles, whatever filter is asked for:
/// at `debug`, tokio-postgres logs every statement's bound parameters, which include the PKCE
/// verifiers of pending sign-ins, token ciphertexts and users' personal data. Capped at `info`
/// (the module that logs them too, since a directive naming it would take precedence).
const CAPPED_AT_INFO: &[&str] = &["tokio_postgres", "tokio_postgres::query"];

pub fn init(server: bool, format: crate::config::LogFormat) {
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
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        crate::config::LogFormat::Human => builder.try_init(),
        crate::config::LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init()
        }
    };
    tracing::debug!(filter = %described, "log filter in effect");
}
