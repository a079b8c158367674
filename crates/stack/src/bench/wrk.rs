//! One measured run: a plan file for `bench/wrk/replay.lua`, wrk driving it,
//! and the CPU the servers spent meanwhile.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// One request of a plan: what wrk sends, placeholders (`{{n}}`, `{{ip}}`,
/// `{{id}}`, see `bench/wrk/replay.lua`) included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanLine {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl PlanLine {
    pub(crate) fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    #[must_use]
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    #[must_use]
    pub(crate) fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// `METHOD \t PATH \t name: value\x1fname: value \t BODY`; fields may
    /// hold none of the separators (compact JSON and form bodies never do).
    fn to_line(&self) -> anyhow::Result<String> {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        let fields = [
            self.method.as_str(),
            self.path.as_str(),
            &headers.join("\x1f"),
            self.body.as_str(),
        ];
        for field in &fields[..2] {
            if field.is_empty() {
                bail!("a plan line needs a method and a path");
            }
        }
        for (field, name) in fields.iter().zip(["method", "path", "headers", "body"]) {
            if field.contains(['\t', '\n', '\r']) || (name != "headers" && field.contains('\x1f')) {
                bail!("the {name} of a plan line holds a tab, newline or \\x1f: {field:?}");
            }
        }
        Ok(fields.join("\t"))
    }
}

/// Writes `lines` as a plan file.
pub(crate) fn write_plan(path: &Path, lines: &[PlanLine]) -> anyhow::Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_line()?);
        text.push('\n');
    }
    fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// What `replay.lua`'s `done()` writes.
#[derive(Debug, Clone, Deserialize)]
struct Summary {
    requests: u64,
    duration_us: u64,
    errors: Errors,
    latency_us: Latency,
    repeats: u64,
    collected: u64,
    /// When the run stopped early (its `{{id}}` values were used up): how
    /// long it ran, first request to last answer. 0 otherwise.
    stopped_after_us: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct Errors {
    connect: u64,
    read: u64,
    write: u64,
    /// Answers with a status of 400 or more.
    status: u64,
    timeout: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct Latency {
    mean: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

/// One run's figures, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// Responses received.
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Answers with a status of 400 or more.
    pub error_responses: u64,
    /// Connect, read and write errors and timeouts.
    pub socket_errors: u64,
    /// Requests that had to reuse a plan line or `{{id}}` value: the plan
    /// ran out, so they took a cheaper path (0 when sized right; a few
    /// where a run stops as its values run out).
    pub repeats: u64,
    /// Values collected by `BENCH_COLLECT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected: Option<u64>,
    /// Process CPU (user + system) over the run divided by the requests
    /// served, in microseconds.
    pub cpu_us_per_request: CpuPerRequest,
}

/// CPU per request of the stack's servers (each process with its children).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuPerRequest {
    pub workerd: f64,
    pub postgrest: f64,
    pub postgres: f64,
}

/// The processes whose CPU each run records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Servers {
    pub(crate) workerd: u32,
    pub(crate) postgrest: u32,
    pub(crate) postgres: u32,
}

/// One wrk run.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// `http://127.0.0.1:PORT`: wrk connects here; the plan's paths follow.
    pub(crate) url: String,
    pub(crate) plan: PathBuf,
    pub(crate) connections: u32,
    pub(crate) duration: Duration,
    /// Makes `{{n}}` unique across runs.
    pub(crate) tag: String,
    /// Values for `{{id}}`.
    pub(crate) ids: Option<PathBuf>,
    /// A Lua pattern whose first capture in each response body is written
    /// to the file.
    pub(crate) collect: Option<(String, PathBuf)>,
}

/// Runs `job` with wrk (one thread, since the machine's cores are what is
/// measured) and reads the figures `replay.lua` writes.
pub(crate) async fn run(root: &Path, job: &Job, servers: Servers) -> anyhow::Result<Measured> {
    let summary_path = job.plan.with_extension("summary.json");
    let _ = fs::remove_file(&summary_path);
    let script = root.join("bench/wrk/replay.lua");
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.arg("-t1")
        .arg(format!("-c{}", job.connections))
        // wrk takes whole seconds.
        .arg(format!("-d{}s", job.duration.as_secs().max(1)))
        // Well above any answer at 32 connections: a slow answer must count
        // as slow, not as an error.
        .args(["--timeout", "10s"])
        .arg("-s")
        .arg(&script)
        .arg(&job.url)
        .env("BENCH_PLAN", &job.plan)
        .env("BENCH_TAG", &job.tag)
        .env("BENCH_SUMMARY", &summary_path)
        .env("BENCH_IDS", job.ids.as_deref().unwrap_or(Path::new("")))
        .env(
            "BENCH_COLLECT",
            job.collect.as_ref().map_or("", |(p, _)| p.as_str()),
        )
        .env(
            "BENCH_COLLECTED",
            job.collect
                .as_ref()
                .map_or(Path::new(""), |(_, f)| f.as_path()),
        )
        .kill_on_drop(true);
    let before = cpu_ticks(servers);
    let out = cmd
        .output()
        .await
        .context("run wrk (Debian package `wrk`; scripts/install-tools.sh installs it)")?;
    let after = cpu_ticks(servers);
    let text = fs::read_to_string(&summary_path).map_err(|e| {
        anyhow::anyhow!(
            "wrk wrote no summary ({e}); status {}, output:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let summary: Summary = serde_json::from_str(&text)
        .with_context(|| format!("read {}: {text}", summary_path.display()))?;
    Ok(measured(&summary, before, after, job.collect.is_some()))
}

/// `x` to `places` decimals: the JSON carries figures, not float noise.
pub(crate) fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

fn measured(s: &Summary, before: [u64; 3], after: [u64; 3], collect: bool) -> Measured {
    let ms = |us: f64| round(us / 1000.0, 3);
    let seconds = if s.stopped_after_us > 0 {
        s.stopped_after_us
    } else {
        s.duration_us
    } as f64
        / 1e6;
    let requests = s.requests.max(1) as f64;
    let per_request = |i: usize| {
        round(
            after[i].saturating_sub(before[i]) as f64 * 1e6 / clock_ticks_per_sec() / requests,
            1,
        )
    };
    Measured {
        requests: s.requests,
        seconds: round(seconds, 3),
        requests_per_sec: if seconds > 0.0 {
            round(s.requests as f64 / seconds, 1)
        } else {
            0.0
        },
        p50_ms: ms(s.latency_us.p50 as f64),
        p90_ms: ms(s.latency_us.p90 as f64),
        p99_ms: ms(s.latency_us.p99 as f64),
        mean_ms: ms(s.latency_us.mean),
        max_ms: ms(s.latency_us.max as f64),
        error_responses: s.errors.status,
        socket_errors: s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout,
        repeats: s.repeats,
        collected: collect.then_some(s.collected),
        cpu_us_per_request: CpuPerRequest {
            workerd: per_request(0),
            postgrest: per_request(1),
            postgres: per_request(2),
        },
    }
}

/// `USER_HZ`, the unit of `/proc/<pid>/stat`'s CPU times: 100 on every
/// Linux this runs on, asked once anyway.
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU ticks of each server and its descendants (PostgreSQL's
/// backends are children of the postmaster, itself maybe under runuser).
fn cpu_ticks(servers: Servers) -> [u64; 3] {
    let table = process_table();
    [servers.workerd, servers.postgrest, servers.postgres].map(|pid| tree_ticks(&table, pid))
}

/// Every process: pid -> (parent pid, utime + stime).
fn process_table() -> HashMap<u32, (u32, u64)> {
    let mut table = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(stat) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            table.insert(pid, stat);
        }
    }
    table
}

/// (ppid, utime + stime) from a `/proc/<pid>/stat` line. The command name
/// is in parentheses and may hold spaces, so fields count from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn tree_ticks(table: &HashMap<u32, (u32, u64)>, root: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Some((_, ticks)) = table.get(&pid) {
            total += ticks;
        }
        stack.extend(
            table
                .iter()
                .filter(|(_, (ppid, _))| *ppid == pid)
                .map(|(child, _)| *child),
        );
    }
    total
}

/// `wrk -v`'s first line, e.g. `wrk 4.1.0 [epoll] Copyright (C) 2012 Will Glozer`.
pub(crate) async fn version() -> anyhow::Result<String> {
    let out = tokio::process::Command::new("wrk")
        .arg("-v")
        .output()
        .await
        .context("wrk is not installed (Debian package `wrk`; run scripts/install-tools.sh)")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().next().unwrap_or_default();
    Ok(line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_lines_are_tab_separated_with_unit_separated_headers() {
        let line = PlanLine::new("POST", "/rpc/f")
            .header("authorization", "Bearer t")
            .header("content-type", "application/json")
            .body(r#"{"p":"{{n}}"}"#);
        assert_eq!(
            line.to_line().expect("line"),
            "POST\t/rpc/f\tauthorization: Bearer t\x1fcontent-type: application/json\t{\"p\":\"{{n}}\"}"
        );
        assert_eq!(
            PlanLine::new("GET", "/health").to_line().expect("line"),
            "GET\t/health\t\t"
        );
    }

    #[test]
    fn plan_lines_refuse_separators_inside_fields() {
        assert!(PlanLine::new("POST", "/x").body("{\n}").to_line().is_err());
        assert!(PlanLine::new("GET", "/x")
            .header("a", "b\tc")
            .to_line()
            .is_err());
        assert!(PlanLine::new("GET", "").to_line().is_err());
    }

    #[test]
    fn stat_lines_parse_past_names_with_spaces_and_parentheses() {
        let stat = "4242 (work erd) (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat), Some((17, 281)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_process_tree_sums_its_descendants() {
        let table: HashMap<u32, (u32, u64)> = [
            (10, (1, 5)),
            (11, (10, 7)),
            (12, (11, 100)),
            (20, (1, 1000)),
        ]
        .into_iter()
        .collect();
        assert_eq!(tree_ticks(&table, 10), 112);
        assert_eq!(tree_ticks(&table, 20), 1000);
        assert_eq!(tree_ticks(&table, 99), 0);
    }

    #[test]
    fn figures_are_per_request_and_in_milliseconds() {
        let summary = Summary {
            requests: 2000,
            duration_us: 4_000_000,
            errors: Errors {
                connect: 0,
                read: 1,
                write: 0,
                status: 3,
                timeout: 2,
            },
            latency_us: Latency {
                mean: 1500.0,
                p50: 1200,
                p90: 2500,
                p99: 9000,
                max: 20000,
            },
            repeats: 0,
            collected: 0,
            stopped_after_us: 0,
        };
        let ticks = clock_ticks_per_sec();
        // One second of workerd CPU over 2000 requests: 500 us each.
        let m = measured(&summary, [0, 0, 0], [ticks as u64, 0, 0], false);
        assert_eq!(m.requests_per_sec, 500.0);
        assert_eq!(m.p50_ms, 1.2);
        assert_eq!(m.p99_ms, 9.0);
        assert_eq!(m.error_responses, 3);
        assert_eq!(m.socket_errors, 3);
        assert!((m.cpu_us_per_request.workerd - 500.0).abs() < 1e-9);
        assert_eq!(m.collected, None);

        // A run that stopped when its values ran out: its own length.
        let stopped = Summary {
            stopped_after_us: 1_000_000,
            ..summary
        };
        assert_eq!(
            measured(&stopped, [0; 3], [0; 3], true).requests_per_sec,
            2000.0
        );
    }
}
