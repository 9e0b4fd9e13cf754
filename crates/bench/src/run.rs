//! `run`: the real idvault server, the hello-world reference and (with `--peer`) a peer product,
//! all as child processes on loopback, driven one scenario at a time by wrk.
//!
//! Order: hello; idvault's reads (hello again in the middle of a long run); the peer's reads;
//! idvault's writes (they change the data, so they come last); hello at the end. Each scenario is
//! first checked (a few requests one at a time: status, content, total), then warmed up
//! (unreported), then measured. The reference is the mean of the hello runs; their spread says
//! how noisy the run was. The scenarios themselves are the table in scenarios.rs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::proc::{self, Machine, Memory, Server};
use crate::scenarios::{self, Kind, Scenario, Seeded, Target};
use crate::wrk::{self, WrkReport};

/// The project's target: each idvault hot read at least this fraction of hello's req/s.
pub const TARGET_RATIO: f64 = 0.5;
/// The reads the target is about.
const TARGET_SCENARIOS: &[&str] = &["load-user", "token-read"];
/// How long a server may take to finish what a previous run left it.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// With more measured scenarios than this, hello is measured in the middle too.
const LONG_RUN: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// better-auth on Node (bench/peers/better-auth), seeded with the same users and tokens.
    BetterAuth,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Data directory made by `idvault-bench seed`.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Length of each measured wrk run (whole seconds).
    #[arg(long, default_value = "10s", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Length of the unreported warm-up run of each scenario; 0s to skip.
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    pub warmup: Duration,
    /// wrk connections (-c) of the reads and the hello reference.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// wrk connections of the writes (create, patch, token store, batch create).
    #[arg(long, default_value_t = 32)]
    pub write_connections: u32,
    /// wrk threads (-t).
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Scenarios to run, comma-separated (hello always runs). Default: all. `--list` names them.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Print the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Also run the reads against a peer product, in the same run.
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// The peer's directory. Default: bench/peers/<peer> of the source tree this binary was built in.
    #[arg(long)]
    pub peer_dir: Option<PathBuf>,
    /// The idvault binary. Default: `idvault` next to this executable (target/release).
    #[arg(long)]
    pub idvault_bin: Option<PathBuf>,
    /// Answers checked one at a time before the load of each scenario (status, content, total).
    #[arg(long, default_value_t = 20)]
    pub samples: u32,
    /// At most this long for each scenario's check (a slow search checks fewer answers).
    #[arg(long, default_value = "3s", value_parser = crate::parse_duration)]
    pub check_time: Duration,
    /// Write the scripts and print the plan (servers, scenarios, skips) without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write the results as JSON. Default: DATA_DIR/bench-results.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One scenario as run: its scripts and the server it goes to.
struct Step {
    scenario: &'static Scenario,
    /// `hello-start`, `hello-mid`, `hello-end`, or the scenario's name.
    label: String,
    check: bool,
    script: PathBuf,
    check_script: PathBuf,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: String,
    server: Target,
    kind: Kind,
    connections: u32,
    requests_per_sec: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p99_9_us: f64,
    /// req/s divided by the hello reference (mean of the hello runs).
    ratio_to_hello: f64,
    /// Peer scenarios: idvault's req/s on the same read divided by the peer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    idvault_over_peer: Option<f64>,
    /// CPU time (user + system) the server process used per request, in microseconds.
    server_cpu_us_per_request: f64,
    /// Share of the whole machine's CPU that was busy during the run (server, wrk, the rest).
    machine_cpu_busy_percent: f64,
    /// Answers checked before the load.
    checked: u64,
    wrk: WrkReport,
}

#[derive(Debug, Serialize)]
struct Skipped {
    scenario: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Versions {
    idvault: String,
    idvault_commit: String,
    rustc: String,
    wrk: String,
    sqlite: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    postgresql: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
}

#[derive(Debug, Serialize)]
struct DatabaseSize {
    /// SQLite: the database file and its WAL. PostgreSQL: pg_database_size.
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    wal_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Results {
    date: String,
    machine: Machine,
    /// /proc/loadavg (1, 5, 15 minutes) before the servers started.
    load_average_before: Option<(f64, f64, f64)>,
    /// Share of the machine's CPU busy during the 2 s before the servers started: anything else
    /// running (a build, another benchmark) skews every figure.
    machine_busy_before_percent: f64,
    versions: Versions,
    /// `sqlite` or `postgresql` (with the database's host and name, never its password).
    backend: String,
    idvault_bin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Peer>,
    duration_secs: u64,
    warmup_secs: u64,
    read_connections: u32,
    write_connections: u32,
    wrk_threads: u32,
    users: u64,
    token_users: u64,
    tenants: u64,
    hello_reference_rps: f64,
    /// (max - min) / mean of the hello runs: how noisy this run was.
    hello_spread_percent: f64,
    target_ratio: f64,
    target_met: bool,
    scenarios: Vec<ScenarioResult>,
    skipped: Vec<Skipped>,
    idvault_memory_at_start: Memory,
    idvault_memory_after: Memory,
    hello_memory_after: Memory,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_memory_after: Option<Memory>,
    database: DatabaseSize,
    failures: Vec<String>,
}

fn default_idvault_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().context("this executable has no parent directory")?;
    Ok(dir.join("idvault"))
}

/// `postgresql (host/db)`: what the results say of a database URL, without its credentials.
fn describe_backend(database_url: Option<&str>) -> String {
    match database_url {
        None => "sqlite".into(),
        Some(url) => {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let host_db = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            let host_db = host_db.split('?').next().unwrap_or(host_db);
            format!("postgresql ({host_db})")
        }
    }
}

/// The scenarios to run, in order, and those skipped with the reason.
fn select(
    wanted: &[String],
    peer: bool,
    seeded: &Seeded,
) -> anyhow::Result<(Vec<&'static Scenario>, Vec<Skipped>)> {
    for name in wanted {
        if scenarios::find(name).is_none() {
            let names: Vec<&str> = scenarios::SCENARIOS.iter().map(|s| s.name).collect();
            bail!("no scenario named '{name}'; the scenarios are: {}", names.join(", "));
        }
    }
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for s in scenarios::SCENARIOS {
        let named = wanted.is_empty()
            || wanted.iter().any(|w| w == s.name || s.peer_of.is_some_and(|of| of == w.as_str()));
        if s.target == Target::Hello {
            chosen.push(s);
            continue;
        }
        if !named || (s.target == Target::Peer && !peer) {
            continue;
        }
        match s.needs.missing(seeded) {
            Some(reason) => skipped.push(Skipped { scenario: s.name.into(), reason: reason.into() }),
            None => chosen.push(s),
        }
    }
    Ok((chosen, skipped))
}

/// hello, the reads (hello again in the middle of a long run), the peer's reads, the writes, hello.
fn plan(chosen: &[&'static Scenario], dir: &Path) -> Vec<Step> {
    let step = |s: &'static Scenario, label: &str, check: bool| Step {
        scenario: s,
        label: label.to_owned(),
        check,
        script: dir.join(format!("bench-{}.lua", s.name)),
        check_script: dir.join(format!("bench-{}-check.lua", s.name)),
    };
    let Some(hello) = chosen.iter().copied().find(|s| s.target == Target::Hello) else {
        return Vec::new();
    };
    let others: Vec<&'static Scenario> =
        chosen.iter().copied().filter(|s| s.target != Target::Hello).collect();
    let mut steps = vec![step(hello, "hello-start", true)];
    let middle = if others.len() > LONG_RUN { Some(others.len() / 2) } else { None };
    for (i, s) in others.iter().enumerate() {
        if middle == Some(i) {
            steps.push(step(hello, "hello-mid", false));
        }
        steps.push(step(s, s.name, true));
    }
    steps.push(step(hello, "hello-end", false));
    steps
}

fn fmt_latency(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1_000_000.0)
    } else if us >= 1_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{us:.0}us")
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_table(results: &Results) {
    println!();
    println!(
        "idvault-bench run, {}: {} users ({} with tokens, {} tenants), backend {}",
        results.date, results.users, results.token_users, results.tenants, results.backend
    );
    println!(
        "machine: {} cores ({}), {:.1} GiB; before the run: load {}, {:.0}% busy",
        results.machine.cores,
        results.machine.cpu_model,
        results.machine.memory_gib,
        results.load_average_before.map_or("?".into(), |(a, b, c)| format!("{a:.2} {b:.2} {c:.2}")),
        results.machine_busy_before_percent
    );
    let v = &results.versions;
    println!(
        "versions: idvault {} ({}), {}, {}, SQLite {}{}{}",
        v.idvault,
        v.idvault_commit,
        v.rustc,
        v.wrk,
        v.sqlite,
        v.postgresql.as_deref().map_or(String::new(), |p| format!(", PostgreSQL {p}")),
        v.node.as_deref().map_or(String::new(), |n| format!(", node {n}")),
    );
    println!(
        "{}s per scenario after {}s of warm-up; reads {} connections, writes {}; {} wrk thread(s)",
        results.duration_secs,
        results.warmup_secs,
        results.read_connections,
        results.write_connections,
        results.wrk_threads
    );
    println!();
    println!(
        "{:<20} {:>5} {:>9} {:>9} {:>9} {:>9} {:>6} {:>9} {:>5} {:>8}",
        "scenario", "conns", "req/s", "p50", "p99", "p99.9", "ratio", "CPU/req", "busy", "idv/peer"
    );
    for s in &results.scenarios {
        println!(
            "{:<20} {:>5} {:>9.0} {:>9} {:>9} {:>9} {:>6.2} {:>7.1}us {:>4.0}% {:>8}",
            s.scenario,
            s.connections,
            s.requests_per_sec,
            fmt_latency(s.p50_us),
            fmt_latency(s.p99_us),
            fmt_latency(s.p99_9_us),
            s.ratio_to_hello,
            s.server_cpu_us_per_request,
            s.machine_cpu_busy_percent,
            s.idvault_over_peer.map_or(String::new(), |f| format!("{f:.1}x")),
        );
    }
    for s in &results.skipped {
        println!("{:<20} skipped: {}", s.scenario, s.reason);
    }
    println!(
        "hello reference (mean of the hello runs): {:.0} req/s (spread {:.1}%)",
        results.hello_reference_rps, results.hello_spread_percent
    );
    let m = &results.idvault_memory_after;
    println!(
        "idvault memory after the run: VmRSS {:.1} MiB = RssAnon {:.1} + RssFile {:.1} + RssShmem {:.1}; \
         VmHWM {:.1} MiB; {} threads (VmRSS {:.1} MiB at start)",
        mib(m.rss_kib),
        mib(m.rss_anon_kib),
        mib(m.rss_file_kib),
        mib(m.rss_shmem_kib),
        mib(m.hwm_kib),
        m.threads,
        mib(results.idvault_memory_at_start.rss_kib),
    );
    if let Some(p) = &results.peer_memory_after {
        println!(
            "peer memory after the run: VmRSS {:.1} MiB (RssAnon {:.1}, RssFile {:.1}), VmHWM {:.1} MiB",
            mib(p.rss_kib),
            mib(p.rss_anon_kib),
            mib(p.rss_file_kib),
            mib(p.hwm_kib)
        );
    }
    println!(
        "database: {:.1} MiB{}; hello VmRSS {:.1} MiB",
        results.database.bytes as f64 / (1024.0 * 1024.0),
        results
            .database
            .wal_bytes
            .map_or(String::new(), |w| format!(" (of which WAL {:.1} MiB)", w as f64 / (1024.0 * 1024.0))),
        mib(results.hello_memory_after.rss_kib)
    );
    println!(
        "target: {} >= {:.2} x hello: {}",
        TARGET_SCENARIOS.join(" and "),
        results.target_ratio,
        if !results.failures.is_empty() {
            "not evaluated (the runs saw errors)"
        } else if results.target_met {
            "MET"
        } else {
            "NOT MET"
        }
    );
}

/// Runs one wrk and measures the server's CPU time and the machine's load around it.
fn measure(
    url: &str,
    pid: u32,
    script: &Path,
    duration: Duration,
    connections: u32,
    threads: u32,
    tag: &str,
) -> anyhow::Result<(WrkReport, f64, f64)> {
    let cpu_before = proc::cpu_ticks(pid)?;
    let (busy0, total0) = proc::machine_ticks()?;
    let (report, _) = wrk::run(url, script, duration, connections, threads, tag)?;
    let cpu_after = proc::cpu_ticks(pid)?;
    let (busy1, total1) = proc::machine_ticks()?;
    let cpu_us = (cpu_after.saturating_sub(cpu_before)) as f64 / proc::TICKS_PER_SEC * 1e6;
    let per_req = if report.requests > 0 { cpu_us / report.requests as f64 } else { 0.0 };
    let busy = if total1 > total0 {
        (busy1.saturating_sub(busy0)) as f64 * 100.0 / (total1 - total0) as f64
    } else {
        0.0
    };
    Ok((report, per_req, busy))
}

/// Waits until the server has finished the work a previous run left it (wrk stops waiting at
/// the end of its duration, but a slow search's queued requests are still computed): until it
/// uses no CPU for 300 ms, at most `limit`. Otherwise that backlog would be counted against the
/// next scenario.
fn settle(pid: u32, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let mut last = proc::cpu_ticks(pid)?;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let now = proc::cpu_ticks(pid)?;
        if now.saturating_sub(last) == 0 {
            return Ok(());
        }
        last = now;
    }
    eprintln!("warning: the server was still busy {}s after the previous run", limit.as_secs());
    Ok(())
}

/// Measures how busy the machine is before the run, and warns when it is not idle.
fn idle_check() -> anyhow::Result<f64> {
    let (busy0, total0) = proc::machine_ticks()?;
    std::thread::sleep(Duration::from_secs(2));
    let (busy1, total1) = proc::machine_ticks()?;
    let busy = if total1 > total0 {
        (busy1.saturating_sub(busy0)) as f64 * 100.0 / (total1 - total0) as f64
    } else {
        0.0
    };
    if busy > 15.0 {
        eprintln!(
            "warning: the machine was {busy:.0}% busy before the run; something else is using the CPU, \
             and the figures will be skewed"
        );
    } else {
        println!("machine idle before the run ({busy:.0}% busy)");
    }
    Ok(busy)
}

/// The first line a command prints, or `unknown`.
fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The commit of the source tree the binary sits in (target/release/idvault), `-dirty` when it
/// has uncommitted changes to tracked files.
fn idvault_commit(bin: &Path) -> String {
    let Some(dir) = bin.parent() else { return "unknown".into() };
    let dir = dir.to_string_lossy();
    let commit = command_line("git", &["-C", &dir, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", &dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if dirty && commit != "unknown" {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

/// One value from PostgreSQL through psql (the scripts use it too), or None.
fn psql_value(url: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql").args([url, "-X", "-A", "-t", "-c", sql]).output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !v.is_empty()).then_some(v)
}

fn database_size(dir: &Path, database_url: Option<&str>) -> DatabaseSize {
    match database_url {
        Some(url) => DatabaseSize {
            bytes: psql_value(url, "SELECT pg_database_size(current_database())")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            wal_bytes: None,
        },
        None => {
            let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
            let wal = size(&format!("{}-wal", crate::seed::DB_FILE));
            DatabaseSize { bytes: size(crate::seed::DB_FILE) + wal, wal_bytes: Some(wal) }
        }
    }
}

fn write_scripts(steps: &[Step], seeded: &Seeded, samples: u32) -> anyhow::Result<()> {
    let authorization = seeded.authorization();
    for s in steps {
        for (path, check) in [(&s.script, None), (&s.check_script, Some(samples))] {
            let text = scenarios::script(s.scenario, seeded, &authorization, check);
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The idvault server on the seeded data: SQLite in the directory, or the seed's PostgreSQL
/// database with the keyring still in the directory.
fn idvault_command(bin: &Path, dir: &Path, database_url: Option<&str>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("IDVAULT_MASTER_KEY")
        .env_remove("IDVAULT_DATA_DIR");
    match database_url {
        Some(url) => cmd.env("IDVAULT_DATABASE_URL", url),
        // A URL left in the environment must not turn a SQLite run into a PostgreSQL one.
        None => cmd.env_remove("IDVAULT_DATABASE_URL"),
    };
    cmd
}

/// A short random-enough tag per wrk process, so that created login ids never repeat.
fn run_tag(label: &str, phase: &str) -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{label}-{phase}-{ms}")
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.list {
        for s in scenarios::SCENARIOS {
            println!(
                "{:<20} {:<8} {:<9} {:<6} {}",
                s.name,
                format!("{:?}", s.kind),
                format!("{:?}", s.target),
                s.method,
                s.lua.lines().find(|l| l.contains("path =")).unwrap_or("").trim()
            );
        }
        return Ok(());
    }
    let wrk_version = wrk::check_installed()?;
    let dir = args.data_dir.clone();
    let (_, seeded) = Seeded::read(&dir)?;
    let (chosen, skipped) = select(&args.scenarios, args.peer.is_some(), &seeded)?;
    let steps = plan(&chosen, &dir);
    // Scripts stay in the data directory, for running wrk (or perf) by hand afterwards.
    write_scripts(&steps, &seeded, args.samples)?;
    let idvault_bin = match &args.idvault_bin {
        Some(p) => p.clone(),
        None => default_idvault_bin()?,
    };
    let backend = describe_backend(seeded.database_url.as_deref());
    let peer_dir = args.peer.map(|p| args.peer_dir.clone().unwrap_or_else(|| crate::peer::default_dir(p)));
    if let (Some(pd), false) = (&peer_dir, args.dry_run) {
        crate::peer::check_installed(pd)?;
    }

    if args.dry_run {
        println!("dry run: {} users ({} with tokens), backend {backend}", seeded.users, seeded.token_users);
        println!("idvault: {}", proc::describe(&idvault_command(&idvault_bin, &dir, None)));
        if let (Some(p), Some(pd)) = (args.peer, &peer_dir) {
            println!("peer: {}", proc::describe(&crate::peer::server_command(p, pd, &dir, &seeded)));
        }
        for s in &steps {
            let conns =
                if s.scenario.kind == Kind::Write { args.write_connections } else { args.connections };
            println!(
                "  {:<20} {:<8} {:>3} connections  {}",
                s.label,
                format!("{:?}", s.scenario.target),
                conns,
                s.script.display()
            );
        }
        for s in &skipped {
            println!("  {:<20} skipped: {}", s.scenario, s.reason);
        }
        return Ok(());
    }
    if !idvault_bin.is_file() {
        bail!(
            "idvault binary not found at {}: build it with `cargo build --release -p idvault` or pass --idvault-bin",
            idvault_bin.display()
        );
    }

    println!("{wrk_version}");
    let load_average_before = proc::load_average();
    let machine_busy_before_percent = idle_check()?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut hello_cmd = Command::new(&exe);
    hello_cmd.args(["hello", "--listen", "127.0.0.1:0"]);
    let hello = Server::start("hello", hello_cmd, &dir.join("hello-server.log"))?;
    let started = Instant::now();
    let idvault = Server::start(
        "idvault",
        idvault_command(&idvault_bin, &dir, seeded.database_url.as_deref()),
        &dir.join("idvault-server.log"),
    )?;
    println!(
        "hello on {} (pid {}); idvault on {} (pid {}, {backend}, ready in {:.2} s, log {})",
        hello.addr,
        hello.pid(),
        idvault.addr,
        idvault.pid(),
        started.elapsed().as_secs_f64(),
        dir.join("idvault-server.log").display()
    );
    let peer = match (args.peer, &peer_dir) {
        (Some(p), Some(pd)) => {
            let log = dir.join("peer-server.log");
            let server = Server::start("peer", crate::peer::server_command(p, pd, &dir, &seeded), &log)?;
            println!("peer {} on {} (pid {}, log {})", p.name(), server.addr, server.pid(), log.display());
            Some(server)
        }
        _ => None,
    };
    let idvault_memory_at_start = proc::memory(idvault.pid())?;

    // A wrong key must be refused, or the load runs would not exercise the key check.
    let wrong = format!("Bearer {}:idv_AAAAAAAAAAAAAAAA.nope", seeded.project_id);
    let r = crate::http::get(&idvault.addr, "/v1/mgmt/user?loginId=user0%40example.com", Some(&wrong))?;
    if r.status != 401 {
        bail!("a wrong management key answered {} instead of 401: {}", r.status, r.body);
    }

    let mut failures = Vec::new();
    let mut measured: Vec<(&Step, u32, WrkReport, f64, f64, u64)> = Vec::new();
    for step in &steps {
        let server = match step.scenario.target {
            Target::Hello => &hello,
            Target::Idvault => &idvault,
            Target::Peer => match &peer {
                Some(p) => p,
                None => continue,
            },
        };
        let url = format!("http://{}/", server.addr);
        let connections =
            if step.scenario.kind == Kind::Write { args.write_connections } else { args.connections };
        settle(server.pid(), SETTLE_LIMIT)?;
        let mut checked = 0;
        if step.check {
            let (report, _) =
                wrk::run(&url, &step.check_script, args.check_time, 1, 1, &run_tag(&step.label, "check"))
                    .with_context(|| format!("checking {}", step.label))?;
            let c = report.check.unwrap_or_default();
            checked = c.checked;
            if c.checked == 0 || c.failed > 0 {
                let why = c.first_failure.unwrap_or_else(|| {
                    format!("no answer within {}s (--check-time)", args.check_time.as_secs().max(1))
                });
                let line = format!(
                    "{}: the check failed ({} of {} answers): {why}",
                    step.label, c.failed, c.checked
                );
                eprintln!("{line}; not measured");
                failures.push(line);
                continue;
            }
        }
        if !args.warmup.is_zero() && step.check {
            println!("{}: {checked} answers checked; warm-up {}s", step.label, args.warmup.as_secs().max(1));
            measure(
                &url,
                server.pid(),
                &step.script,
                args.warmup,
                connections,
                args.threads,
                &run_tag(&step.label, "warmup"),
            )?;
        }
        settle(server.pid(), SETTLE_LIMIT)?;
        println!(
            "running {}: {}s, {connections} connections, {} wrk thread(s)",
            step.label,
            args.duration.as_secs().max(1),
            args.threads
        );
        let (report, cpu_per_req, busy) = measure(
            &url,
            server.pid(),
            &step.script,
            args.duration,
            connections,
            args.threads,
            &run_tag(&step.label, "load"),
        )?;
        println!(
            "  {:.0} req/s, p50 {}, p99 {}, p99.9 {}, {} requests",
            report.requests_per_sec,
            fmt_latency(report.p50_us),
            fmt_latency(report.p99_us),
            fmt_latency(report.p99_9_us),
            report.requests
        );
        measured.push((step, connections, report, cpu_per_req, busy, checked));
    }

    let idvault_memory_after = proc::memory(idvault.pid())?;
    let hello_memory_after = proc::memory(hello.pid())?;
    let peer_memory_after = match &peer {
        Some(p) => Some(proc::memory(p.pid())?),
        None => None,
    };
    idvault.stop()?;
    hello.stop()?;
    if let Some(p) = peer {
        p.stop()?;
    }
    let database = database_size(&dir, seeded.database_url.as_deref());

    let hello_rps: Vec<f64> = measured
        .iter()
        .filter(|(s, ..)| s.scenario.target == Target::Hello)
        .map(|(_, _, r, ..)| r.requests_per_sec)
        .collect();
    let reference = hello_rps.iter().sum::<f64>() / hello_rps.len().max(1) as f64;
    let spread =
        match (hello_rps.iter().copied().reduce(f64::max), hello_rps.iter().copied().reduce(f64::min)) {
            (Some(max), Some(min)) if reference > 0.0 => (max - min) * 100.0 / reference,
            _ => 0.0,
        };
    let rps_of =
        |name: &str| measured.iter().find(|(s, ..)| s.label == name).map(|(_, _, r, ..)| r.requests_per_sec);
    let mut rows = Vec::new();
    for (step, connections, report, cpu_per_req, busy, checked) in &measured {
        let label = &step.label;
        if report.non_2xx_3xx > 0 {
            failures.push(format!(
                "{label}: {} of {} responses were not 2xx/3xx",
                report.non_2xx_3xx, report.requests
            ));
        }
        if report.socket_errors.total() > 0 {
            failures.push(format!("{label}: socket errors {:?}", report.socket_errors));
        }
        if report.requests == 0 {
            failures.push(format!("{label}: no request completed"));
        }
        let idvault_over_peer = step
            .scenario
            .peer_of
            .and_then(rps_of)
            .filter(|_| report.requests_per_sec > 0.0)
            .map(|idv| idv / report.requests_per_sec);
        rows.push(ScenarioResult {
            scenario: label.clone(),
            server: step.scenario.target,
            kind: step.scenario.kind,
            connections: *connections,
            requests_per_sec: report.requests_per_sec,
            p50_us: report.p50_us,
            p90_us: report.p90_us,
            p99_us: report.p99_us,
            p99_9_us: report.p99_9_us,
            ratio_to_hello: if reference > 0.0 { report.requests_per_sec / reference } else { 0.0 },
            idvault_over_peer,
            server_cpu_us_per_request: *cpu_per_req,
            machine_cpu_busy_percent: *busy,
            checked: *checked,
            wrk: report.clone(),
        });
    }
    let target_met = failures.is_empty()
        && TARGET_SCENARIOS.iter().all(|name| {
            rows.iter().find(|r| r.scenario == *name).is_none_or(|r| r.ratio_to_hello >= TARGET_RATIO)
        });
    let versions = Versions {
        idvault: command_line(&idvault_bin.to_string_lossy(), &["--version"]),
        idvault_commit: idvault_commit(&idvault_bin),
        rustc: command_line("rustc", &["--version"]),
        wrk: wrk_version,
        sqlite: rusqlite::version().to_owned(),
        postgresql: seeded
            .database_url
            .as_deref()
            .and_then(|url| psql_value(url, "SELECT current_setting('server_version')")),
        node: args.peer.map(|_| command_line("node", &["--version"])),
    };
    let results = Results {
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        machine: proc::machine(),
        load_average_before,
        machine_busy_before_percent,
        versions,
        backend,
        idvault_bin: idvault_bin.display().to_string(),
        peer: args.peer,
        duration_secs: args.duration.as_secs().max(1),
        warmup_secs: args.warmup.as_secs(),
        read_connections: args.connections,
        write_connections: args.write_connections,
        wrk_threads: args.threads,
        users: seeded.users,
        token_users: seeded.token_users,
        tenants: seeded.tenants,
        hello_reference_rps: reference,
        hello_spread_percent: spread,
        target_ratio: TARGET_RATIO,
        target_met,
        scenarios: rows,
        skipped,
        idvault_memory_at_start,
        idvault_memory_after,
        hello_memory_after,
        peer_memory_after,
        database,
        failures: failures.clone(),
    };
    print_table(&results);
    let out = args.out.clone().unwrap_or_else(|| dir.join("bench-results.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    if !failures.is_empty() {
        bail!("some runs failed, so their figures are missing or not valid:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Seeded {
        Seeded { users: 100, token_users: 10, provider: "google".into(), ..Seeded::default() }
    }

    #[test]
    fn backends_are_described_without_credentials() {
        assert_eq!(describe_backend(None), "sqlite");
        assert_eq!(
            describe_backend(Some("postgres://bench:s3cret@127.0.0.1:5432/idv_bench_1?sslmode=disable")),
            "postgresql (127.0.0.1:5432/idv_bench_1)"
        );
        assert_eq!(describe_backend(Some("postgres://127.0.0.1/db")), "postgresql (127.0.0.1/db)");
    }

    #[test]
    fn selection_skips_what_the_seed_lacks_and_rejects_unknown_names() {
        let (chosen, skipped) = select(&[], false, &seeded()).unwrap();
        let names: Vec<&str> = chosen.iter().map(|s| s.name).collect();
        assert_eq!(names.first(), Some(&"hello"));
        assert!(names.contains(&"load-user") && names.contains(&"create-batch-100"));
        assert!(!names.iter().any(|n| n.starts_with("peer-")), "no peer without --peer");
        let skipped: Vec<&str> = skipped.iter().map(|s| s.scenario.as_str()).collect();
        assert_eq!(skipped, ["load-user-by-id", "outbound-token", "search-tenant-role"]);

        let (chosen, _) = select(&["token-read".into()], true, &seeded()).unwrap();
        let names: Vec<&str> = chosen.iter().map(|s| s.name).collect();
        assert_eq!(names, ["hello", "token-read", "peer-token-read"]);
        assert!(select(&["nope".into()], false, &seeded()).is_err());
    }

    #[test]
    fn the_plan_measures_hello_first_last_and_in_the_middle_of_long_runs() {
        let dir = Path::new("/tmp/x");
        let (chosen, _) = select(&[], false, &seeded()).unwrap();
        let labels: Vec<String> = plan(&chosen, dir).into_iter().map(|s| s.label).collect();
        assert_eq!(labels.first().map(String::as_str), Some("hello-start"));
        assert_eq!(labels.last().map(String::as_str), Some("hello-end"));
        assert!(labels.iter().any(|l| l == "hello-mid"));
        let (short, _) = select(&["load-user".into()], false, &seeded()).unwrap();
        let labels: Vec<String> = plan(&short, dir).into_iter().map(|s| s.label).collect();
        assert_eq!(labels, ["hello-start", "load-user", "hello-end"]);
    }
}
