//! The benchmark's results: one JSON document (everything measured) and a
//! markdown rendering of it (what the README quotes).

use std::{fmt::Write as _, fs, path::Path, process::Command};

use anyhow::{bail, Context as _};
use serde::Serialize;

use super::{wrk::round, Measured, Options};

/// Everything one run of the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    /// When it started (UTC, RFC 3339).
    pub date: String,
    pub smoke: bool,
    pub machine: Machine,
    /// `git rev-parse --short HEAD`, `+dirty` with uncommitted changes.
    pub commit: String,
    pub tools: Tools,
    pub settings: Settings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub wasm: Vec<WasmSize>,
    pub startup: Startup,
    pub routes: Vec<RouteReport>,
    /// Each floor step's own figures (routes share some).
    pub floors: Vec<StepReport>,
    /// The PNGs `bench/plot.py` made beside the JSON (after it was written,
    /// so only the markdown lists them).
    #[serde(skip)]
    pub plots: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// 1, 5 and 15 minute load averages when the run started and ended:
    /// other work on the machine moves every absolute figure.
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct Tools {
    pub wrk: String,
    pub workerd: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: Vec<u32>,
    /// wrk's threads: one, so the load generator takes one core at most.
    pub wrk_threads: u32,
}

/// A function's build as deployed.
#[derive(Debug, Clone, Serialize)]
pub struct WasmSize {
    pub function: String,
    pub wasm_bytes: u64,
    pub wasm_gzip_bytes: u64,
    /// The JavaScript glue, `index.js`.
    pub js_bytes: u64,
    /// Whether the wasm keeps its name section (`KEEP_WASM_NAMES=1`): then
    /// the sizes are not what `scripts/build-functions.sh` deploys.
    pub name_section: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    /// Start-ups measured per script.
    pub samples: usize,
    /// A plain JavaScript worker: workerd's own start-up.
    pub js_worker: StartupTime,
    pub functions: Vec<StartupTime>,
}

/// Spawn of a workerd serving only this script to its first answer.
#[derive(Debug, Clone, Serialize)]
pub struct StartupTime {
    pub script: String,
    pub median_ms: f64,
    pub samples_ms: Vec<f64>,
}

impl StartupTime {
    pub(crate) fn new(script: &str, samples_ms: Vec<f64>) -> Self {
        let mut samples_ms: Vec<f64> = samples_ms.into_iter().map(|ms| round(ms, 1)).collect();
        samples_ms.sort_by(f64::total_cmp);
        Self {
            script: script.to_owned(),
            median_ms: round(median(&samples_ms), 1),
            samples_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    pub route: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub function: String,
    /// PostgREST requests per route request, counted at its counting proxy.
    pub postgrest_requests: f64,
    pub postgrest_calls: Vec<String>,
    pub floor_steps: Vec<String>,
    /// What the function answered one of the probes.
    pub probe_answer: String,
    pub runs: Vec<RouteRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteRun {
    pub connections: u32,
    pub route: Measured,
    pub floor: Floor,
    /// The route's requests/s over the floor's (1 = as fast as the floor).
    pub ratio_to_floor: f64,
    /// The route's p50 minus the floor's, in milliseconds.
    pub added_p50_ms: f64,
}

/// The floor's steps one after another.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    /// `1 / Σ (1 / rps)`: each connection does the steps in turn.
    pub requests_per_sec: f64,
    /// Sums of the steps' percentiles (the p99 sum is an upper bound).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// workerd CPU per request of a floor that is a worker (`/health`'s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workerd_cpu_us: Option<f64>,
}

impl RouteRun {
    /// `worker_floor`: the floor runs in workerd, so its workerd CPU counts.
    pub(crate) fn new(
        connections: u32,
        route: Measured,
        steps: &[Measured],
        worker_floor: bool,
    ) -> Self {
        let floor = Floor {
            requests_per_sec: if steps.iter().all(|s| s.requests_per_sec > 0.0) {
                round(
                    1.0 / steps.iter().map(|s| 1.0 / s.requests_per_sec).sum::<f64>(),
                    1,
                )
            } else {
                0.0
            },
            p50_ms: round(steps.iter().map(|s| s.p50_ms).sum(), 3),
            p99_ms: round(steps.iter().map(|s| s.p99_ms).sum(), 3),
            workerd_cpu_us: worker_floor
                .then(|| round(steps.iter().map(|s| s.cpu_us_per_request.workerd).sum(), 1)),
        };
        Self {
            connections,
            ratio_to_floor: if floor.requests_per_sec > 0.0 {
                round(route.requests_per_sec / floor.requests_per_sec, 3)
            } else {
                0.0
            },
            added_p50_ms: round(route.p50_ms - floor.p50_ms, 3),
            route,
            floor,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub key: String,
    pub label: String,
    /// `postgrest`, `third party` or `worker`.
    pub kind: String,
    pub runs: Vec<StepRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRun {
    pub connections: u32,
    #[serde(flatten)]
    pub measured: Measured,
}

impl Report {
    /// What is known before anything runs.
    pub(crate) fn begin(opts: &Options, wrk: String) -> anyhow::Result<Self> {
        let workerd = command_line(
            Command::new(
                opts.root
                    .join("node_modules/@cloudflare/workerd-linux-64/bin/workerd"),
            )
            .arg("--version"),
        )
        .unwrap_or_else(|| "unknown".to_owned());
        Ok(Self {
            name: opts.name.clone(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            smoke: opts.smoke,
            machine: Machine {
                cores: super::cores(),
                cpu_model: fs::read_to_string("/proc/cpuinfo")
                    .ok()
                    .and_then(|info| {
                        info.lines()
                            .find(|l| l.starts_with("model name"))
                            .and_then(|l| l.split_once(':'))
                            .map(|(_, model)| model.trim().to_owned())
                    })
                    .unwrap_or_else(|| "unknown".to_owned()),
                kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                    .map(|k| k.trim().to_owned())
                    .unwrap_or_default(),
                load_average_start: load_average(),
                load_average_end: [0.0; 3],
            },
            commit: commit(&opts.root),
            tools: Tools { wrk, workerd },
            settings: Settings {
                duration_s: opts.duration.as_secs_f64(),
                warmup_s: opts.warmup.as_secs_f64(),
                connections: opts.connections.clone(),
                wrk_threads: 1,
            },
            note: opts.note.clone(),
            wasm: Vec::new(),
            startup: Startup {
                samples: 0,
                js_worker: StartupTime::new("", Vec::new()),
                functions: Vec::new(),
            },
            routes: Vec::new(),
            floors: Vec::new(),
            plots: Vec::new(),
        })
    }

    pub(crate) fn finish(&mut self) {
        self.machine.load_average_end = load_average();
    }

    /// Fails if any run had error answers or socket errors: a harness whose
    /// requests are refused measures the wrong thing. Warns about runs whose
    /// plan ran out (`repeats`).
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let mut check = |what: String, m: &Measured| {
            if m.requests == 0 {
                problems.push(format!("{what}: no request was answered"));
            }
            if m.error_responses + m.socket_errors > 0 {
                problems.push(format!(
                    "{what}: {} error answers, {} socket errors in {} requests",
                    m.error_responses, m.socket_errors, m.requests
                ));
            }
            // A few are expected where a run stops as its values run out
            // (requests already being sent): more would skew the figure.
            if m.repeats * 100 > m.requests {
                eprintln!(
                    "bench: warning: {what}: {} of {} requests reused a plan line or value",
                    m.repeats, m.requests
                );
            }
        };
        for route in &self.routes {
            for run in &route.runs {
                check(
                    format!(
                        "{}{} at {} connections",
                        route.route,
                        route
                            .token
                            .as_deref()
                            .map(|t| format!(" ({t})"))
                            .unwrap_or_default(),
                        run.connections
                    ),
                    &run.route,
                );
            }
        }
        for step in &self.floors {
            for run in &step.runs {
                check(
                    format!("floor {} at {} connections", step.label, run.connections),
                    &run.measured,
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(
                "the benchmark's requests failed:\n  {}",
                problems.join("\n  ")
            )
        }
    }

    /// The report as markdown: what the README quotes.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let load = |l: [f64; 3]| format!("{:.1} / {:.1} / {:.1}", l[0], l[1], l[2]);
        let _ = writeln!(md, "# Benchmark {}\n", self.name);
        let _ = writeln!(
            md,
            "{} on {} cores ({}), Linux {}; load average (1/5/15 min) {} at the start, {} at the end. \
             Commit {}; {}; {}, one thread; {} s per run after a {} s warm-up per route; connections: {}.{}\n",
            self.date,
            m.cores,
            m.cpu_model,
            m.kernel,
            load(m.load_average_start),
            load(m.load_average_end),
            self.commit,
            self.tools.workerd,
            self.tools.wrk,
            self.settings.duration_s,
            self.settings.warmup_s,
            self.settings
                .connections
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if self.smoke {
                " **Smoke run: proves the harness works; the figures mean nothing.**"
            } else {
                ""
            }
        );
        if let Some(note) = &self.note {
            let _ = writeln!(md, "> {note}\n");
        }

        md.push_str("## Routes against their floors\n\n");
        md.push_str(
            "The floor of a route is what it cannot beat: its PostgREST requests sent straight to \
             PostgREST with the same JWT, and the third-party stand-in alone, one after another \
             (latencies add up; requests/s is 1 / Σ 1/(requests/s)). For `GET /health` it is a \
             plain JavaScript Worker in the same workerd. workerd CPU is the process's CPU over the \
             requests served.\n\n",
        );
        md.push_str(
            "| route | token | conns | req/s | p50 ms | p99 ms | floor req/s | floor p50 ms | floor p99 ms | req/s vs floor | added p50 ms | workerd CPU µs/req |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for route in &self.routes {
            for run in &route.runs {
                let r = &run.route;
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:+.2} | {:.0}{} |",
                    route.route,
                    route.token.as_deref().unwrap_or("-"),
                    run.connections,
                    r.requests_per_sec,
                    r.p50_ms,
                    r.p99_ms,
                    run.floor.requests_per_sec,
                    run.floor.p50_ms,
                    run.floor.p99_ms,
                    run.ratio_to_floor,
                    run.added_p50_ms,
                    r.cpu_us_per_request.workerd,
                    run.floor
                        .workerd_cpu_us
                        .map(|us| format!(" (floor {us:.0})"))
                        .unwrap_or_default()
                );
            }
        }

        if !self.plots.is_empty() {
            md.push_str(
                "\nRequests/s and p99 against connections, each route beside its floor:\n\n",
            );
            for plot in &self.plots {
                let _ = writeln!(md, "![{plot}]({plot})");
            }
        }

        md.push_str("\n## Floor steps\n\n");
        md.push_str(
            "| step | conns | req/s | p50 ms | p99 ms | PostgREST CPU µs/req | PostgreSQL CPU µs/req |\n\
             |---|--:|--:|--:|--:|--:|--:|\n",
        );
        for step in &self.floors {
            for run in &step.runs {
                let s = &run.measured;
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} |",
                    step.label,
                    run.connections,
                    s.requests_per_sec,
                    s.p50_ms,
                    s.p99_ms,
                    s.cpu_us_per_request.postgrest,
                    s.cpu_us_per_request.postgres
                );
            }
        }

        md.push_str("\n## PostgREST requests per route request\n\n");
        md.push_str("Counted at a counting proxy in front of PostgREST, over the probes sent before measuring.\n\n");
        md.push_str("| route | token | PostgREST requests | which |\n|---|---|--:|---|\n");
        for route in &self.routes {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} |",
                route.route,
                route.token.as_deref().unwrap_or("-"),
                route.postgrest_requests,
                if route.postgrest_calls.is_empty() {
                    "none".to_owned()
                } else {
                    route.postgrest_calls.join("; ")
                }
            );
        }

        md.push_str("\n## Wasm size\n\n");
        md.push_str(
            "| function | wasm KB | gzip KB | JS glue KB | name section |\n|---|--:|--:|--:|---|\n",
        );
        for w in &self.wasm {
            let kb = |b: u64| b.div_ceil(1024);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                w.function,
                kb(w.wasm_bytes),
                kb(w.wasm_gzip_bytes),
                kb(w.js_bytes),
                if w.name_section {
                    "kept (KEEP_WASM_NAMES=1: not the deployed size)"
                } else {
                    "stripped, as deployed"
                }
            );
        }

        let _ = writeln!(
            md,
            "\n## Start-up\n\nSpawn of a workerd serving only that script to its first answer \
             (median of {}).\n",
            self.startup.samples
        );
        md.push_str("| script | first answer, ms | over a plain JS worker, ms |\n|---|--:|--:|\n");
        let js = self.startup.js_worker.median_ms;
        let _ = writeln!(md, "| plain JavaScript worker | {js:.0} | - |");
        for s in &self.startup.functions {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:+.0} |",
                s.script,
                s.median_ms,
                s.median_ms - js
            );
        }
        md
    }
}

/// Sizes of each function's build.
pub(crate) fn wasm_sizes(root: &Path, functions: &[&str]) -> anyhow::Result<Vec<WasmSize>> {
    functions
        .iter()
        .map(|function| {
            let build = root.join("functions").join(function).join("build");
            let wasm_path = build.join("index_bg.wasm");
            let wasm = fs::read(&wasm_path).with_context(|| {
                format!(
                    "read {}: run scripts/build-functions.sh",
                    wasm_path.display()
                )
            })?;
            let gzip = Command::new("gzip")
                .arg("-9c")
                .arg(&wasm_path)
                .output()
                .context("run gzip")?;
            if !gzip.status.success() {
                bail!("gzip -9c {} failed", wasm_path.display());
            }
            Ok(WasmSize {
                function: (*function).to_owned(),
                wasm_bytes: wasm.len() as u64,
                wasm_gzip_bytes: gzip.stdout.len() as u64,
                js_bytes: fs::metadata(build.join("index.js")).map_or(0, |m| m.len()),
                name_section: has_name_section(&wasm),
            })
        })
        .collect()
}

/// Whether a wasm module has a custom section called `name` (function
/// names, for profiles; `scripts/build-functions.sh` strips it).
fn has_name_section(wasm: &[u8]) -> bool {
    /// An unsigned LEB128 at `at`: (value, bytes read).
    fn leb(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
        let mut value = 0usize;
        for (i, byte) in bytes.get(at..)?.iter().take(5).enumerate() {
            value |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some((value, i + 1));
            }
        }
        None
    }
    if wasm.get(..4) != Some(b"\0asm") {
        return false;
    }
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        let Some((size, read)) = leb(wasm, at + 1) else {
            return false;
        };
        let start = at + 1 + read;
        if id == 0 {
            if let Some((len, read)) = leb(wasm, start) {
                if wasm.get(start + read..start + read + len) == Some(b"name") {
                    return true;
                }
            }
        }
        at = start + size;
    }
    false
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn load_average() -> [f64; 3] {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [(); 3].map(|()| values.next().unwrap_or(0.0))
}

fn commit(root: &Path) -> String {
    let git = |args: &[&str]| command_line(Command::new("git").arg("-C").arg(root).args(args));
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head}+dirty")
    } else {
        head
    }
}

/// The command's trimmed stdout, if it ran and succeeded.
fn command_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::CpuPerRequest;

    fn measured(rps: f64, p50: f64, p99: f64) -> Measured {
        Measured {
            requests: 100,
            seconds: 1.0,
            requests_per_sec: rps,
            p50_ms: p50,
            p90_ms: p50,
            p99_ms: p99,
            mean_ms: p50,
            max_ms: p99,
            error_responses: 0,
            socket_errors: 0,
            repeats: 0,
            collected: None,
            cpu_us_per_request: CpuPerRequest::default(),
        }
    }

    #[test]
    fn a_floor_of_steps_adds_latencies_and_combines_throughput() {
        let run = RouteRun::new(
            8,
            measured(200.0, 5.0, 12.0),
            &[measured(1000.0, 1.0, 3.0), measured(1000.0, 1.5, 4.0)],
            false,
        );
        assert!((run.floor.requests_per_sec - 500.0).abs() < 1e-9);
        assert!((run.floor.p50_ms - 2.5).abs() < 1e-9);
        assert!((run.floor.p99_ms - 7.0).abs() < 1e-9);
        assert!((run.ratio_to_floor - 0.4).abs() < 1e-9);
        assert!((run.added_p50_ms - 2.5).abs() < 1e-9);
        assert_eq!(run.floor.workerd_cpu_us, None);
    }

    #[test]
    fn name_sections_are_found_among_custom_sections() {
        let module = |sections: &[u8]| [b"\0asm\x01\0\0\0".as_slice(), sections].concat();
        // A type section (id 1, 1 byte), then custom "producers", then "name".
        let with_name = module(b"\x01\x01\x00\x00\x0a\x09producers\x00\x05\x04name");
        assert!(has_name_section(&with_name));
        let without = module(b"\x01\x01\x00\x00\x0a\x09producers");
        assert!(!has_name_section(&without));
        assert!(!has_name_section(b"not wasm"));
    }

    #[test]
    fn medians_of_odd_and_even_samples() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert_eq!(median(&[]), 0.0);
    }
}
