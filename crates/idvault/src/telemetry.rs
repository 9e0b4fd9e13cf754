//! Logging. Human-readable lines on stderr; level from `IDVAULT_LOG` (or `RUST_LOG`), default
//! `info` for the server and `warn` for one-shot commands. Nothing logged carries a secret: keys
//! and tokens are `SecretString`s and handlers skip their arguments.

use tracing_subscriber::EnvFilter;

pub fn init(server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = std::env::var("IDVAULT_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
