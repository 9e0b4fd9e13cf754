//! The reference: the smallest useful axum server. Whatever it reaches on this machine, in this
//! run, is the ceiling idvault's handlers are compared with.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use axum::routing::get;
use axum::Router;

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    // The same machine-readable line as idvault's, which `run` waits for.
    let mut out = std::io::stdout().lock();
    writeln!(out, "hello listening on http://{addr}")?;
    out.flush()?;
    drop(out);
    axum::serve(listener, app).await.context("serving")?;
    Ok(())
}
