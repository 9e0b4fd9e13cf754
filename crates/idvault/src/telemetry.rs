//! Logging. Human-readable lines on stderr; level from `IDVAULT_LOG` (or `RUST_LOG`), default
//! `info` for the server and `warn` for one-shot commands. Nothing logged carries a secret: keys
//! and tokens are `SecretString`s and handlers skip their arguments.

use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

/// Dependencies whose logs below `info` print data idvault handles, whatever filter is asked for:
/// at `debug`, tokio-postgres logs every statement's bound parameters, which include the PKCE
/// verifiers of pending sign-ins, token ciphertexts and users' personal data. Capped at `info`
/// (the module that logs them too, since a directive naming it would take precedence).
const CAPPED_AT_INFO: &[&str] = &["tokio_postgres", "tokio_postgres::query"];

pub fn init(server: bool) {
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
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
