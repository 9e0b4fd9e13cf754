//! `run`: the real idvault server and the hello-world reference, both as child processes on
//! loopback, driven one after the other by wrk.
//!
//! Order: sanity checks (a sample of real responses), an unreported warm-up of every scenario,
//! then hello, load-user, token-read, hello. The reference is the mean of the two hello runs;
//! both are reported, and their spread says how noisy the run was.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use rand::Rng;
use serde::Serialize;

use crate::meta::{self, BenchMeta};
use crate::proc::{self, Machine, Memory, Server};
use crate::wrk::{self, WrkReport};

/// The project's target: each idvault hot path at least this fraction of hello's req/s.
pub const TARGET_RATIO: f64 = 0.5;

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
    /// wrk connections (-c).
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// wrk threads (-t).
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// The idvault binary. Default: `idvault` next to this executable (target/release).
    #[arg(long)]
    pub idvault_bin: Option<PathBuf>,
    /// Requests sent one by one before the load, per scenario, whose status and body are checked.
    #[arg(long, default_value_t = 20)]
    pub samples: u32,
    /// Where to write the results as JSON. Default: DATA_DIR/bench-results.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Hello,
    Idvault,
}

struct Scenario {
    name: &'static str,
    target: Target,
    script: PathBuf,
}

#[derive(Debug, Serialize)]
struct ScenarioResult {
    scenario: String,
    requests_per_sec: f64,
    p50_us: f64,
    p75_us: f64,
    p90_us: f64,
    p99_us: f64,
    /// req/s divided by the hello reference (mean of the two hello runs).
    ratio_to_hello: f64,
    /// CPU time (user + system) the server process used per request, in microseconds.
    server_cpu_us_per_request: f64,
    /// Share of the whole machine's CPU that was busy during the run (server, wrk, the rest).
    machine_cpu_busy_percent: f64,
    wrk: WrkReport,
}

#[derive(Debug, Serialize)]
struct Results {
    date: String,
    machine: Machine,
    wrk_version: String,
    idvault_bin: String,
    duration_secs: u64,
    warmup_secs: u64,
    connections: u32,
    wrk_threads: u32,
    users: u64,
    token_users: u64,
    hello_reference_rps: f64,
    /// Spread of the two hello runs relative to their mean: how noisy this run was.
    hello_spread_percent: f64,
    target_ratio: f64,
    target_met: bool,
    scenarios: Vec<ScenarioResult>,
    idvault_memory_at_start: Memory,
    idvault_memory_after: Memory,
    hello_memory_after: Memory,
    /// Share of the machine's CPU busy during the 2 s before the servers started: anything else
    /// running (a build, another benchmark) skews every figure.
    machine_busy_before_percent: f64,
    database_mib: f64,
    failures: Vec<String>,
}

fn default_idvault_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().context("this executable has no parent directory")?;
    Ok(dir.join("idvault"))
}

fn url_path(prefix: &str, i: u64, suffix: &str) -> String {
    format!("{prefix}{i}{suffix}")
}

const LOAD_USER_PREFIX: &str = "/v1/mgmt/user?loginId=user";
const TOKEN_PREFIX: &str = "/v1/mgmt/user/provider/token?loginId=user";
const HELLO_PREFIX: &str = "/?loginId=user";
const AT_DOMAIN: &str = "%40example.com";

fn token_suffix(provider: &str) -> String {
    format!("{AT_DOMAIN}&provider={provider}&withRefreshToken=false&forceRefresh=false")
}

/// Sends a few requests one by one and checks their status and content, so that a load run
/// never measures error answers.
fn sanity_check(
    hello: &Server,
    idvault: &Server,
    meta: &BenchMeta,
    authorization: &str,
    samples: u32,
) -> anyhow::Result<()> {
    let r = crate::http::get(&hello.addr, "/", None)?;
    if r.status != 200 || r.body != "Hello, World!" {
        bail!("hello answered {} '{}' instead of 200 'Hello, World!'", r.status, r.body);
    }
    let mut rng = rand::thread_rng();
    for _ in 0..samples {
        let i = rng.gen_range(0..meta.users);
        let path = url_path(LOAD_USER_PREFIX, i, AT_DOMAIN);
        let r = crate::http::get(&idvault.addr, &path, Some(authorization))?;
        let expect = meta::login_id(i);
        if r.status != 200 || !r.body.contains(&expect) {
            bail!("GET {path} answered {} (expected 200 with {expect}): {}", r.status, r.body);
        }
    }
    if meta.token_users > 0 {
        for _ in 0..samples {
            let i = rng.gen_range(0..meta.token_users);
            let path = url_path(TOKEN_PREFIX, i, &token_suffix(&meta.provider));
            let r = crate::http::get(&idvault.addr, &path, Some(authorization))?;
            let expect = meta::access_token(i);
            if r.status != 200 || !r.body.contains(&format!("\"{expect}\"")) {
                bail!(
                    "GET {path} answered {} (expected 200 with the access token {expect}): {}",
                    r.status,
                    r.body
                );
            }
        }
    }
    // A wrong key must be refused, or the load runs would not exercise the key check.
    let wrong = format!("Bearer {}:idv_AAAAAAAAAAAAAAAA.nope", meta.project_id);
    let r = crate::http::get(&idvault.addr, &url_path(LOAD_USER_PREFIX, 0, AT_DOMAIN), Some(&wrong))?;
    if r.status != 401 {
        bail!("a wrong management key answered {} instead of 401", r.status);
    }
    Ok(())
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

fn print_table(results: &Results) {
    println!();
    println!(
        "{:<14} {:>10} {:>9} {:>9} {:>9} {:>8} {:>12} {:>9}",
        "scenario", "req/s", "p50", "p90", "p99", "ratio", "srv CPU/req", "CPU busy"
    );
    for s in &results.scenarios {
        println!(
            "{:<14} {:>10.0} {:>9} {:>9} {:>9} {:>8.2} {:>10.1}us {:>8.0}%",
            s.scenario,
            s.requests_per_sec,
            fmt_latency(s.p50_us),
            fmt_latency(s.p90_us),
            fmt_latency(s.p99_us),
            s.ratio_to_hello,
            s.server_cpu_us_per_request,
            s.machine_cpu_busy_percent
        );
    }
    println!(
        "hello reference (mean of the two hello runs): {:.0} req/s (spread {:.1}%)",
        results.hello_reference_rps, results.hello_spread_percent
    );
    let m = &results.idvault_memory_after;
    println!(
        "idvault RSS after the run: {:.1} MiB (peak {:.1} MiB, {} threads); at start {:.1} MiB; hello RSS {:.1} MiB",
        m.rss_kib as f64 / 1024.0,
        m.hwm_kib as f64 / 1024.0,
        m.threads,
        results.idvault_memory_at_start.rss_kib as f64 / 1024.0,
        results.hello_memory_after.rss_kib as f64 / 1024.0,
    );
    println!(
        "target: load-user and token-read >= {:.2} x hello: {}",
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

/// Runs one scenario and measures the server's CPU time and the machine's load around it.
fn measure(
    scenario: &Scenario,
    server: &Server,
    duration: Duration,
    args: &RunArgs,
) -> anyhow::Result<(WrkReport, f64, f64)> {
    let url = format!("http://{}/", server.addr);
    let cpu_before = proc::cpu_ticks(server.pid())?;
    let (busy0, total0) = proc::machine_ticks()?;
    let (report, _) = wrk::run(&url, &scenario.script, duration, args.connections, args.threads)?;
    let cpu_after = proc::cpu_ticks(server.pid())?;
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

fn write_script(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("bench-{name}.lua"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let wrk_version = wrk::check_installed()?;
    let dir = args.data_dir.clone();
    let meta = meta::read(&crate::meta_path(&dir))?;
    let idvault_bin = match &args.idvault_bin {
        Some(p) => p.clone(),
        None => default_idvault_bin()?,
    };
    if !idvault_bin.is_file() {
        bail!(
            "idvault binary not found at {}: build it with `cargo build --release -p idvault` or pass --idvault-bin",
            idvault_bin.display()
        );
    }
    let authorization = format!("Bearer {}:{}", meta.project_id, meta.management_key);

    // Scripts stay in the data directory, for running wrk (or perf) by hand afterwards.
    let hello_script =
        write_script(&dir, "hello", &wrk::script(meta.users, HELLO_PREFIX, AT_DOMAIN, &authorization))?;
    let load_script = write_script(
        &dir,
        "load-user",
        &wrk::script(meta.users, LOAD_USER_PREFIX, AT_DOMAIN, &authorization),
    )?;
    let token_script = write_script(
        &dir,
        "token-read",
        &wrk::script(meta.token_users.max(1), TOKEN_PREFIX, &token_suffix(&meta.provider), &authorization),
    )?;

    println!("{wrk_version}");
    let machine_busy_before_percent = idle_check()?;
    let exe = std::env::current_exe().context("locating this executable")?;
    let mut hello_cmd = Command::new(&exe);
    hello_cmd.args(["hello", "--listen", "127.0.0.1:0"]);
    let hello = Server::start("hello", hello_cmd, &dir.join("hello-server.log"))?;
    let mut idv_cmd = Command::new(&idvault_bin);
    idv_cmd
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("IDVAULT_MASTER_KEY")
        .env_remove("IDVAULT_DATA_DIR");
    let started = Instant::now();
    let idvault = Server::start("idvault", idv_cmd, &dir.join("idvault-server.log"))?;
    println!(
        "hello on {} (pid {}); idvault on {} (pid {}, ready in {:.2} s, log {})",
        hello.addr,
        hello.pid(),
        idvault.addr,
        idvault.pid(),
        started.elapsed().as_secs_f64(),
        dir.join("idvault-server.log").display()
    );
    let idvault_memory_at_start = proc::memory(idvault.pid())?;

    sanity_check(&hello, &idvault, &meta, &authorization, args.samples)
        .context("sanity check before the load")?;
    println!(
        "sanity check: {} load-user and {} token-read answers were 200 with the expected content",
        args.samples,
        if meta.token_users > 0 { args.samples } else { 0 }
    );

    let mut scenarios = vec![
        Scenario { name: "hello", target: Target::Hello, script: hello_script.clone() },
        Scenario { name: "load-user", target: Target::Idvault, script: load_script },
    ];
    if meta.token_users > 0 {
        scenarios.push(Scenario { name: "token-read", target: Target::Idvault, script: token_script });
    } else {
        eprintln!("warning: the data directory has no provider tokens; token-read is skipped");
    }
    let server_of = |s: &Scenario| match s.target {
        Target::Hello => &hello,
        Target::Idvault => &idvault,
    };

    if !args.warmup.is_zero() {
        for s in &scenarios {
            println!("warm-up: {} for {}s", s.name, args.warmup.as_secs().max(1));
            measure(s, server_of(s), args.warmup, &args)?;
        }
    }

    let hello_after = Scenario { name: "hello", target: Target::Hello, script: hello_script };
    let order: Vec<(&Scenario, &str)> = scenarios
        .iter()
        .map(|s| (s, if s.target == Target::Hello { "hello-before" } else { s.name }))
        .chain(std::iter::once((&hello_after, "hello-after")))
        .collect();
    let mut measured: Vec<(String, WrkReport, f64, f64)> = Vec::new();
    for (s, label) in order {
        println!(
            "running {label}: {}s, {} connections, {} wrk thread(s)",
            args.duration.as_secs().max(1),
            args.connections,
            args.threads
        );
        let (report, cpu_per_req, busy) = measure(s, server_of(s), args.duration, &args)?;
        println!(
            "  {:.0} req/s, p50 {}, p99 {}, {} requests",
            report.requests_per_sec,
            fmt_latency(report.p50_us),
            fmt_latency(report.p99_us),
            report.requests
        );
        measured.push((label.to_owned(), report, cpu_per_req, busy));
    }

    let idvault_memory_after = proc::memory(idvault.pid())?;
    let hello_memory_after = proc::memory(hello.pid())?;
    idvault.stop()?;
    hello.stop()?;

    let hello_rps: Vec<f64> = measured
        .iter()
        .filter(|(l, ..)| l.starts_with("hello"))
        .map(|(_, r, ..)| r.requests_per_sec)
        .collect();
    let reference = hello_rps.iter().sum::<f64>() / hello_rps.len().max(1) as f64;
    let spread = match (hello_rps.first(), hello_rps.last()) {
        (Some(a), Some(b)) if reference > 0.0 => (a - b).abs() * 100.0 / reference,
        _ => 0.0,
    };
    let mut failures = Vec::new();
    let mut results_rows = Vec::new();
    for (label, report, cpu_per_req, busy) in measured {
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
        results_rows.push(ScenarioResult {
            scenario: label,
            requests_per_sec: report.requests_per_sec,
            p50_us: report.p50_us,
            p75_us: report.p75_us,
            p90_us: report.p90_us,
            p99_us: report.p99_us,
            ratio_to_hello: if reference > 0.0 { report.requests_per_sec / reference } else { 0.0 },
            server_cpu_us_per_request: cpu_per_req,
            machine_cpu_busy_percent: busy,
            wrk: report,
        });
    }
    let target_met = failures.is_empty()
        && results_rows
            .iter()
            .filter(|r| r.scenario == "load-user" || r.scenario == "token-read")
            .all(|r| r.ratio_to_hello >= TARGET_RATIO);
    let database_mib = std::fs::metadata(dir.join(crate::seed::DB_FILE))
        .map(|m| m.len() as f64 / (1024.0 * 1024.0))
        .unwrap_or(0.0);
    let results = Results {
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        machine: proc::machine(),
        wrk_version,
        idvault_bin: idvault_bin.display().to_string(),
        duration_secs: args.duration.as_secs().max(1),
        warmup_secs: args.warmup.as_secs(),
        connections: args.connections,
        wrk_threads: args.threads,
        users: meta.users,
        token_users: meta.token_users,
        hello_reference_rps: reference,
        hello_spread_percent: spread,
        target_ratio: TARGET_RATIO,
        target_met,
        scenarios: results_rows,
        idvault_memory_at_start,
        idvault_memory_after,
        hello_memory_after,
        machine_busy_before_percent,
        database_mib,
        failures: failures.clone(),
    };
    print_table(&results);
    let out = args.out.clone().unwrap_or_else(|| dir.join("bench-results.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    if !failures.is_empty() {
        bail!("the load runs saw errors, so their figures are not valid:\n  {}", failures.join("\n  "));
    }
    Ok(())
}
