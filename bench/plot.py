#!/usr/bin/env python3
"""Plots `stack bench` results: one PNG per route, requests/s and p99 latency
against connections, each token's route beside its floor.

    python3 bench/plot.py bench/results/2026-12-01-2core.json

writes bench/results/2026-12-01-2core-<route>.png and prints their paths.
`stack bench` runs it after each run.

matplotlib comes from PyPI: without it, this installs it into a virtualenv
under .tools/bench-venv and runs itself again there. If that fails too (no
network, no venv module), it says so and exits 0 without plots: a plot is a
view of the JSON, never a reason for the benchmark to fail.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".tools" / "bench-venv"
MATPLOTLIB = "matplotlib>=3.8,<4"


def skip(why):
    print(f"plot: {why}; no plots (the JSON and markdown are complete)", file=sys.stderr)
    sys.exit(0)


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("BENCH_PLOT_IN_VENV"):
        skip(f"matplotlib did not import in {VENV}")
    python = VENV / "bin" / "python"
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", MATPLOTLIB],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        skip(f"matplotlib could not be installed into {VENV} ({e})")
    os.environ["BENCH_PLOT_IN_VENV"] = "1"
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def slug(route):
    """`POST /attachments/sign` -> `attachments-sign`."""
    path = route.split(" ", 1)[-1]
    return "-".join(part for part in path.split("/") if part) or "root"


def plot(report, json_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = {}
    for entry in report["routes"]:
        routes.setdefault(entry["route"], []).append(entry)

    written = []
    for route, entries in routes.items():
        fig, (rps_ax, p99_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
        for i, entry in enumerate(entries):
            color = f"C{i}"
            token = f" ({entry['token']})" if entry.get("token") else ""
            conns = [run["connections"] for run in entry["runs"]]
            rps_ax.plot(conns, [r["route"]["requests_per_sec"] for r in entry["runs"]],
                        "o-", color=color, label=f"route{token}")
            rps_ax.plot(conns, [r["floor"]["requests_per_sec"] for r in entry["runs"]],
                        "s--", color=color, alpha=0.7, label=f"floor{token}")
            p99_ax.plot(conns, [r["route"]["p99_ms"] for r in entry["runs"]],
                        "o-", color=color, label=f"route{token}")
            p99_ax.plot(conns, [r["floor"]["p99_ms"] for r in entry["runs"]],
                        "s--", color=color, alpha=0.7, label=f"floor{token}")
        for ax, title, unit in ((rps_ax, "requests/s", "req/s"), (p99_ax, "p99 latency", "ms")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(report["settings"]["connections"])
            ax.set_xticklabels([str(c) for c in report["settings"]["connections"]])
            ax.set_xlabel("connections")
            ax.set_ylabel(unit)
            ax.set_title(title)
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
        load = report["machine"]["load_average_start"][0]
        fig.suptitle(
            f"{route}: route vs floor ({report['name']}, {report['machine']['cores']} cores, "
            f"load {load:.1f})"
        )
        fig.tight_layout()
        out = json_path.with_name(f"{json_path.stem}-{slug(route)}.png")
        fig.savefig(out, dpi=90)
        plt.close(fig)
        written.append(out)
    return written


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    json_path = Path(sys.argv[1]).resolve()
    report = json.loads(json_path.read_text())
    ensure_matplotlib()
    for path in plot(report, json_path):
        print(path)


if __name__ == "__main__":
    main()
