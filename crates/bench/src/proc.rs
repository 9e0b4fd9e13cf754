//! Child server processes and what /proc says about them and the machine.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// What a server prints once it accepts connections: `[...] listening on http://HOST:PORT`
/// (idvault and hello prefix it with their name; the peer starts its line with it).
const LISTENING: &str = "listening on http://";

/// A server started as a child process. Killed on drop, so that an error never leaves one behind.
pub struct Server {
    pub name: &'static str,
    pub addr: String,
    child: Child,
}

impl Server {
    /// Spawns `cmd` with stdout piped and stderr to `log`, and waits for its listening line.
    pub fn start(name: &'static str, mut cmd: Command, log: &Path) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log_file));
        let mut child = cmd.spawn().with_context(|| format!("starting {name}: {}", describe(&cmd)))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("{name}: no stdout pipe"))?;
        let (tx, rx) = mpsc::channel::<String>();
        // Reads the listening line, then keeps draining stdout so that the child never blocks on
        // a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Some((_, addr)) = line.split_once(LISTENING) {
                        sent = tx.send(addr.trim().trim_end_matches('/').to_owned()).is_ok();
                    }
                }
            }
        });
        let mut server = Server { name, addr: String::new(), child };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => server.addr = addr,
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                bail!(
                    "{name} did not print its listening line (exit status: {status:?}); see {}",
                    log.display()
                );
            }
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it has not exited within 15 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        let _ =
            Command::new("kill").args(["-TERM", &pid]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: {} did not stop within 15 s; killing it", self.name);
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// A command's program and arguments, without its environment (which may hold a key or a
/// database password).
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory of a process, in KiB (`/proc/PID/status`): now (VmRSS) and at its peak
/// (VmHWM), and what VmRSS is made of: anonymous memory (heap, stacks: what the process itself
/// allocated), file-backed pages (the binary and, with mmap, the database file: the kernel may
/// drop them under pressure) and shared memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    pub rss_shmem_kib: u64,
    pub threads: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(parse_status(&text))
}

/// The memory lines of a `/proc/PID/status` text; a missing line reads as 0.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        rss_anon_kib: field("RssAnon:"),
        rss_file_kib: field("RssFile:"),
        rss_shmem_kib: field("RssShmem:"),
        threads: field("Threads:"),
    }
}

/// Whole-machine load averages (1, 5, 15 minutes) from /proc/loadavg.
pub fn load_average() -> Option<(f64, f64, f64)> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Clock ticks per second of /proc times. USER_HZ is 100 on every Linux build this runs on.
pub const TICKS_PER_SEC: f64 = 100.0;

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = text.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> anyhow::Result<u64> {
        fields.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("unexpected {path}"))
    };
    // utime is field 14, stime field 15; index 0 here is field 3.
    Ok(get(11)? + get(12)?)
}

/// Whole-machine CPU counters from /proc/stat: (busy, total) ticks.
pub fn machine_ticks() -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line =
        text.lines().find(|l| l.starts_with("cpu ")).ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// A short description of the machine, for the results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: f64,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|r| r.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| (kib / (1024.0 * 1024.0) * 10.0).round() / 10.0)
        .unwrap_or(0.0);
    Machine {
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu_model,
        kernel,
        memory_gib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_memory_lines_are_read_and_missing_ones_are_zero() {
        let text = "Name:\tidvault\nVmPeak:\t 5000000 kB\nVmHWM:\t 3700000 kB\nVmRSS:\t 3617000 kB\n\
                    RssAnon:\t   11264 kB\nRssFile:\t 3605000 kB\nRssShmem:\t     736 kB\nThreads:\t5\n";
        assert_eq!(
            parse_status(text),
            Memory {
                rss_kib: 3_617_000,
                hwm_kib: 3_700_000,
                rss_anon_kib: 11_264,
                rss_file_kib: 3_605_000,
                rss_shmem_kib: 736,
                threads: 5,
            }
        );
        // Old kernels have no RssAnon/RssFile lines.
        let old = parse_status("VmRSS:\t 100 kB\n");
        assert_eq!((old.rss_kib, old.rss_anon_kib, old.rss_file_kib), (100, 0, 0));
    }

    #[test]
    fn the_listening_line_is_found_with_or_without_a_name_before_it() {
        for line in ["idvault listening on http://127.0.0.1:4000", "listening on http://127.0.0.1:4000/"] {
            let (_, addr) = line.split_once(LISTENING).unwrap();
            assert_eq!(addr.trim().trim_end_matches('/'), "127.0.0.1:4000");
        }
    }

    #[test]
    fn this_process_has_memory_and_cpu_figures() {
        let m = memory(std::process::id()).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib && m.threads >= 1);
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
