//! Driving `wrk`: the Lua scripts, the command line, and reading its `--latency` report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Serialize;

/// Fails with a clear message when wrk is not installed.
pub fn check_installed() -> anyhow::Result<String> {
    match Command::new("wrk").arg("--version").output() {
        Ok(out) => {
            let text =
                String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            Ok(text
                .lines()
                .find(|l| l.starts_with("wrk "))
                .map(|l| l.split(" Copyright").next().unwrap_or(l))
                .unwrap_or("wrk (unknown version)")
                .trim()
                .to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "wrk is not installed (it drives the load). Install it with `apt-get install -y wrk` \
             (Debian/Ubuntu) and run again"
        ),
        Err(e) => Err(e).context("running wrk --version"),
    }
}

/// What one wrk run reported. Latencies in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WrkReport {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub latency_avg_us: f64,
    pub latency_max_us: f64,
    pub p50_us: f64,
    pub p75_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    /// From the script's done() line (wrk's own report stops at 99 %); 0 when absent.
    pub p99_9_us: f64,
    pub non_2xx_3xx: u64,
    pub socket_errors: SocketErrors,
    /// Sanity-check scripts only: answers checked, answers that failed, the first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub checked: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SocketErrors {
    pub connect: u64,
    pub read: u64,
    pub write: u64,
    pub timeout: u64,
}

impl SocketErrors {
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }
}

/// Runs wrk for `duration` against `url` with `script`, and parses its report. `tag` is passed to
/// the script (`-- tag`): it makes the login ids of create scenarios unique to this wrk process.
pub fn run(
    url: &str,
    script: &Path,
    duration: Duration,
    connections: u32,
    threads: u32,
    tag: &str,
) -> anyhow::Result<(WrkReport, String)> {
    let secs = duration.as_secs().max(1);
    // wrk wants at least one connection per thread.
    let threads = threads.clamp(1, connections.max(1));
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", connections.max(threads)))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .arg("--")
        .arg(tag)
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed ({}): {}{}", out.status, stdout, String::from_utf8_lossy(&out.stderr));
    }
    let report = parse(&stdout).with_context(|| format!("reading wrk's report:\n{stdout}"))?;
    Ok((report, stdout))
}

/// `612.34us`, `1.20ms`, `2.00s`, `1.00m` to microseconds.
fn parse_time(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    let (num, factor) = if let Some(n) = s.strip_suffix("ns") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000_000.0)
    } else {
        bail!("unknown time unit in '{s}'")
    };
    let v: f64 = num.parse().with_context(|| format!("bad time '{s}'"))?;
    Ok(v * factor)
}

/// `key=value` pairs of the scripts' `idvault-bench ...` lines.
fn key_value<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn parse_u64(s: &str) -> anyhow::Result<u64> {
    s.trim().trim_end_matches(',').parse().with_context(|| format!("bad number '{s}'"))
}

pub fn parse(text: &str) -> anyhow::Result<WrkReport> {
    let mut r = WrkReport::default();
    let mut seen_rps = false;
    let mut seen_distribution = false;
    let mut in_distribution = false;
    for line in text.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        if t.starts_with("Latency Distribution") {
            in_distribution = true;
            seen_distribution = true;
            continue;
        }
        if in_distribution {
            if let [pct, value] = words.as_slice() {
                if let Some(p) = pct.strip_suffix('%') {
                    let v = parse_time(value)?;
                    match p {
                        "50" => r.p50_us = v,
                        "75" => r.p75_us = v,
                        "90" => r.p90_us = v,
                        "99" => r.p99_us = v,
                        _ => {}
                    }
                    continue;
                }
            }
            in_distribution = false;
        }
        if let Some(reason) = t.strip_prefix("idvault-bench check first_failure=") {
            r.check.get_or_insert_with(CheckReport::default).first_failure = Some(reason.to_owned());
            continue;
        }
        match words.as_slice() {
            ["idvault-bench", "latency", rest @ ..] => {
                // The exact percentiles of wrk's histogram, in microseconds.
                let us = |key: &str| -> anyhow::Result<Option<f64>> {
                    key_value(rest, key)
                        .map(|v| v.parse::<f64>().with_context(|| format!("bad {key} '{v}'")))
                        .transpose()
                };
                if let Some(v) = us("p99.9")? {
                    r.p99_9_us = v;
                }
            }
            ["idvault-bench", "check", rest @ ..] => {
                let c = r.check.get_or_insert_with(CheckReport::default);
                if let Some(v) = key_value(rest, "checked") {
                    c.checked = parse_u64(v)?;
                }
                if let Some(v) = key_value(rest, "failed") {
                    c.failed = parse_u64(v)?;
                }
            }
            ["Latency", avg, _stdev, max, ..] => {
                r.latency_avg_us = parse_time(avg)?;
                r.latency_max_us = parse_time(max)?;
            }
            [n, "requests", "in", secs, ..] => {
                r.requests = parse_u64(n)?;
                r.seconds = parse_time(secs.trim_end_matches(','))? / 1_000_000.0;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx_3xx = parse_u64(n)?,
            ["Socket", "errors:", "connect", c, "read", rd, "write", w, "timeout", to] => {
                r.socket_errors = SocketErrors {
                    connect: parse_u64(c)?,
                    read: parse_u64(rd)?,
                    write: parse_u64(w)?,
                    timeout: parse_u64(to)?,
                };
            }
            ["Requests/sec:", v] => {
                r.requests_per_sec = v.parse().with_context(|| format!("bad Requests/sec '{v}'"))?;
                seen_rps = true;
            }
            _ => {}
        }
    }
    if !seen_rps {
        return Err(anyhow!("no Requests/sec line"));
    }
    if !seen_distribution {
        return Err(anyhow!("no latency distribution (was --latency passed?)"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Running 10s test @ http://127.0.0.1:40000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.34us  200.12us   1.50s    80.00%
    Req/Sec    50.00k     2.00k   55.00k    70.00%
  Latency Distribution
     50%  600.00us
     75%  700.00us
     90%  800.00us
     99%    1.20ms
  500000 requests in 10.00s, 60.00MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 1, write 0, timeout 3
Requests/sec:  50000.00
Transfer/sec:      6.00MB
idvault-bench latency p50=600 p75=700 p90=800 p99=1200 p99.9=15321 max=1500000 requests=500000
";

    #[test]
    fn parses_a_latency_report() {
        let r = parse(SAMPLE).unwrap();
        assert_eq!(r.requests, 500_000);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert!((r.requests_per_sec - 50_000.0).abs() < 1e-9);
        assert!((r.p50_us - 600.0).abs() < 1e-9);
        assert!((r.p90_us - 800.0).abs() < 1e-9);
        assert!((r.p99_us - 1_200.0).abs() < 1e-9);
        assert!((r.latency_max_us - 1_500_000.0).abs() < 1e-6);
        assert_eq!(r.non_2xx_3xx, 12);
        assert_eq!(r.socket_errors.read, 1);
        assert_eq!(r.socket_errors.timeout, 3);
        assert_eq!(r.socket_errors.total(), 4);
        assert!((r.p99_9_us - 15_321.0).abs() < 1e-9);
        assert_eq!(r.check, None);
    }

    #[test]
    fn parses_a_sanity_check_and_its_first_failure() {
        let text = format!(
            "{SAMPLE}idvault-bench check checked=20 failed=2\n\
             idvault-bench check first_failure=status 404 for /v1/mgmt/user?loginId=user5%40example.com: {{\"errorCode\":\"E062108\"}}\n"
        );
        let r = parse(&text).unwrap();
        let c = r.check.unwrap();
        assert_eq!((c.checked, c.failed), (20, 2));
        assert_eq!(
            c.first_failure.as_deref(),
            Some("status 404 for /v1/mgmt/user?loginId=user5%40example.com: {\"errorCode\":\"E062108\"}")
        );
        let clean = parse(&format!("{SAMPLE}idvault-bench check checked=3 failed=0\n")).unwrap();
        assert_eq!(clean.check, Some(CheckReport { checked: 3, failed: 0, first_failure: None }));
    }

    #[test]
    fn without_the_scripts_line_p99_9_is_zero() {
        let plain: String =
            SAMPLE.lines().filter(|l| !l.starts_with("idvault-bench")).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(&plain).unwrap().p99_9_us, 0.0);
    }

    #[test]
    fn a_clean_report_has_no_errors_and_missing_lines_fail() {
        let clean: String = SAMPLE
            .lines()
            .filter(|l| !l.contains("Non-2xx") && !l.contains("Socket errors"))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = parse(&clean).unwrap();
        assert_eq!(r.non_2xx_3xx, 0);
        assert_eq!(r.socket_errors.total(), 0);
        assert!(parse("garbage").is_err());
    }
}
