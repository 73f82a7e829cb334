"""The cost of observing: metrics on vs off in the same run, and an idle sidecar container.

- Metrics: the live workloads' one-edit latency and storm (benchmarks.workloads) with and without
  METRICS_ADDR, alternated (off, on, off, on) so a busy machine's drift hits both alike; while on,
  /metrics is scraped every second, far more often than Prometheus' default 15 s.
- Idle container: the image as built from the Dockerfile (tests/docker_image.py: no registry
  needed), an empty tree, nothing changing; CPU from the container's cgroup (cpu.stat, or
  cpuacct.usage on cgroup v1) beside the daemon's own from /proc, with the image's probe (over
  two of its one-minute cycles) and, for comparison in the same run, the former one (`pylsyncd
  health` every 2 s, over 20 s). And the time from the daemon's "ready" line to Docker's first
  passing probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import procfs
from benchmarks.daemons import Daemon, Peer
from benchmarks.initial_sync import progress
from benchmarks.sizes import Sizes
from benchmarks.workloads import LiveRun

REPOSITORY = Path(__file__).resolve().parent.parent
# The engine and the image build are the tests' own: one way to get them, with no registry.
sys.path.insert(0, str(REPOSITORY / "tests"))
from docker_engine import Engine, docker_engine  # noqa: E402
from docker_image import build_image  # noqa: E402

IMAGE = "pylsyncd:bench"
ROUNDS = 3  # off/on pairs of the live workloads
# The image's probe answers about once a minute once healthy (docker/healthcheck.sh): its window
# holds two of its cycles. The former probe ran every 2 s: 20 s is ten of them.
IDLE_WINDOWS = {"marker": 124.0, "pylsyncd_health": 20.0}
HEALTHY_TIMEOUT = 60.0
OLD_PROBE = "pylsyncd health"


@dataclass
class MetricsRound:
    """One run of the edits and the storm, with or without metrics."""

    metrics: bool
    edit_p50_ms: float | None
    storm_cpu_seconds: float
    storm_seconds: float | None
    complete: bool


@dataclass
class IdleContainer:
    """An idle sidecar over `window_seconds`: the container's CPU, the daemon's share of it."""

    probe: str
    window_seconds: float
    container_cpu_seconds: float
    daemon_cpu_seconds: float
    ready_to_healthy_seconds: float

    @property
    def container_percent(self) -> float:
        return 100 * self.container_cpu_seconds / self.window_seconds

    @property
    def daemon_percent(self) -> float:
        return 100 * self.daemon_cpu_seconds / self.window_seconds


class Scraper:
    """GETs /metrics every second from a thread, as an impatient Prometheus would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            self.scrapes += 1


def metrics_round(root: str, sizes: Sizes, metrics: bool) -> MetricsRound:
    """The edits and the storm on a fresh pair, with METRICS_ADDR on 127.0.0.1 or without."""
    peer = Peer("pylsyncd", "direct")
    live = LiveRun(peer, root, sizes)
    extra = ("--metrics-addr", "127.0.0.1:0") if metrics else ()
    live.daemon = Daemon(peer, live.source, live.replica, root, extra)
    live.daemon.start()
    try:
        live.daemon.wait_ready(300)
        with contextlib.ExitStack() as stack:
            if metrics:
                stack.enter_context(Scraper(_metrics_port(live.daemon.log_path)))
            edit = live.edits()
            storm, _ = live.storm()
    finally:
        live.daemon.stop()
    subprocess.run(["rm", "-rf", root], check=True)
    return MetricsRound(metrics, edit.p50_ms, storm.cpu_seconds, storm.seconds,
                        edit.complete and storm.complete)  # fmt: skip


def _metrics_port(log_path: str) -> int:
    text = Path(log_path).read_text()
    line = next(line for line in text.splitlines() if "metrics on http://" in line)
    return int(line.rsplit(":", 1)[1].split("/")[0])


def measure_metrics(root: str, sizes: Sizes) -> dict[str, Any]:
    """ROUNDS alternations of off and on; the medians and their differences."""
    rounds = []
    for number in range(ROUNDS):
        for metrics in (False, True):
            progress(f"observe: metrics {'on' if metrics else 'off'}, round {number + 1} ...")
            rounds.append(metrics_round(f"{root}/metrics-{number}-{metrics}", sizes, metrics))
            progress(f"  {rounds[-1]}")

    def median(metrics: bool, field: str) -> float:
        values = [getattr(r, field) for r in rounds if r.metrics is metrics]
        return statistics.median(v for v in values if v is not None)

    off_p50, on_p50 = median(False, "edit_p50_ms"), median(True, "edit_p50_ms")
    off_cpu, on_cpu = median(False, "storm_cpu_seconds"), median(True, "storm_cpu_seconds")
    return {
        "observer_per_batch": observer_cost(),
        "rounds": [vars(r) for r in rounds],
        "edit_p50_ms": {"off": off_p50, "on": on_p50, "rise": on_p50 - off_p50},
        "storm_cpu_seconds": {
            "off": off_cpu,
            "on": on_cpu,
            "rise_percent": 100 * (on_cpu - off_cpu) / off_cpu,
        },
        "complete": all(r.complete for r in rounds),
    }


def observer_cost(batches: int = 100_000) -> dict[str, float]:
    """Microseconds the pair's observer calls add to one one-edit batch (its event read, its
    batch applied), with metrics and without: the hot path's own share of the p50 above, which a
    shared machine's noise hides in the end-to-end figure."""
    from pylsyncd.events import Event, EventKind
    from pylsyncd.metrics import DaemonMetrics
    from pylsyncd.pair.observer import UNOBSERVED, PairObserver
    from pylsyncd.transfer import Outcome

    events, outcome = [Event(EventKind.MODIFIED, "edited.txt")], Outcome(copied=1, bytes=12)

    def per_batch(observer: PairObserver) -> float:
        started = time.perf_counter()
        for _ in range(batches):
            observer.events_read(events)
            observer.batch_applied(outcome, 0.0003, 0.0001)
        return (time.perf_counter() - started) / batches * 1e6

    on = per_batch(DaemonMetrics("bench").pair("bench"))
    off = per_batch(UNOBSERVED)
    return {"off_us": off, "on_us": on, "rise_us": on - off}


def _cgroup_cpu_seconds(pid: int) -> float:
    """CPU seconds of the cgroup `pid` is in: cgroup v2's cpu.stat, or v1's cpuacct.usage."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            usage = Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage").read_text()
            return int(usage) / 1e9
    path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        stat = Path(f"{root}{path}/cpu.stat")
        if stat.exists():
            fields = dict(line.split() for line in stat.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    raise RuntimeError(f"no CPU accounting found for the cgroup of {pid}")


def idle_container(engine: Engine, probe: str | None, window: float) -> IdleContainer:
    """One idle container of IMAGE, an empty tree, over `window` seconds; `probe` replaces the
    image's if given."""
    name = f"pylsyncd-bench-idle-{os.getpid()}"
    override = ["--health-cmd", probe, "--health-interval", "2s"] if probe else []
    engine.docker(
        "run", "-d", "--name", name, "--network", "none", *override,
        "--mount", "type=tmpfs,destination=/srv/src", IMAGE, "/srv/src", "/srv/dst",
    )  # fmt: skip
    try:
        healthy = _wait_healthy(engine, name)
        ready = next(
            line
            for line in engine.docker("logs", "--timestamps", name).stderr.splitlines()
            if "ready:" in line
        )
        init = int(engine.docker("inspect", "--format", "{{.State.Pid}}", name).stdout)
        daemon = procfs.children_of(init)[0]
        time.sleep(3)  # the first heartbeat and probes after "healthy" settle
        container_before = _cgroup_cpu_seconds(init)
        daemon_before = procfs.precise_cpu_seconds(daemon)
        time.sleep(window)
        container_cpu = _cgroup_cpu_seconds(init) - container_before
        daemon_cpu = procfs.precise_cpu_seconds(daemon) - daemon_before
    finally:
        engine.docker("rm", "--force", name, check=False)
    return IdleContainer(
        probe or "image's (docker/healthcheck.sh)",
        window,
        container_cpu,
        daemon_cpu,
        healthy - _docker_time(ready.split()[0]),
    )


def _wait_healthy(engine: Engine, name: str) -> float:
    """When the first probe that passed ended (Unix seconds)."""
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while time.monotonic() < deadline:
        log = engine.docker("inspect", "--format", "{{json .State.Health.Log}}", name).stdout
        passed = [probe for probe in json.loads(log) or [] if probe["ExitCode"] == 0]
        if passed:
            return _docker_time(passed[0]["End"])
        time.sleep(0.2)
    raise RuntimeError(f"{name} was not healthy within {HEALTHY_TIMEOUT:.0f} s")


def _docker_time(text: str) -> float:
    """An RFC 3339 time with nanoseconds, as Docker writes it, in Unix seconds."""
    match = re.fullmatch(r"(.+?:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, zone = match.groups()
    offset = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(whole + offset).timestamp() + float(f"0{fraction or ''}")


def measure_idle_container() -> dict[str, Any]:
    """The idle container with the image's probe and with the former one, same engine."""
    cache = REPOSITORY / ".cache" / "docker"
    with docker_engine(cache) as engine:
        progress("observe: building the image ...")
        build_image(engine, REPOSITORY, IMAGE, cache)
        results = {}
        for key, probe in (("marker", None), ("pylsyncd_health", OLD_PROBE)):
            progress(f"observe: idle container, probe {probe or 'of the image'} ...")
            idle = idle_container(engine, probe, IDLE_WINDOWS[key])
            results[key] = vars(idle) | {
                "container_percent": idle.container_percent,
                "daemon_percent": idle.daemon_percent,
            }
            progress(f"  {results[key]}")
        engine.docker("image", "rm", IMAGE, check=False)
    return results


def run_observe(root: str, sizes: Sizes) -> dict[str, Any]:
    """The observe workload group: metrics overhead, then the idle container; its table is
    printed (the page of docs/ does not show this group)."""
    results = {
        "metrics": measure_metrics(f"{root}/observe", sizes),
        "idle_container": measure_idle_container(),
    }
    progress("\n" + observe_table(results))
    return results


def observe_table(results: dict[str, Any]) -> str:
    """The group's figures against their targets, as a markdown table."""
    metrics, idle = results["metrics"], results["idle_container"]
    marker, old = idle["marker"], idle["pylsyncd_health"]
    rows = [
        ("one-edit p50, metrics off -> on",
         f"{metrics['edit_p50_ms']['off']:.3f} -> {metrics['edit_p50_ms']['on']:.3f} ms "
         f"({metrics['edit_p50_ms']['rise']:+.3f} ms)", "rise <= 0.05 ms"),
        ("storm daemon CPU, metrics off -> on",
         f"{metrics['storm_cpu_seconds']['off']:.2f} -> {metrics['storm_cpu_seconds']['on']:.2f} s "
         f"({metrics['storm_cpu_seconds']['rise_percent']:+.1f} %)", "rise <= 5 %"),
        ("idle container CPU, image's probe",
         f"{marker['container_cpu_seconds'] * 1000:.0f} ms in {marker['window_seconds']:.0f} s "
         f"({marker['container_percent']:.3f} % of a core)", "<= 0.1 %"),
        ("  of which the daemon",
         f"{marker['daemon_cpu_seconds'] * 1000:.0f} ms ({marker['daemon_percent']:.3f} %)", ""),
        ("idle container CPU, `pylsyncd health` probe",
         f"{old['container_cpu_seconds'] * 1000:.0f} ms in {old['window_seconds']:.0f} s "
         f"({old['container_percent']:.2f} % of a core)", "(before)"),
        ("ready -> healthy, image's probe",
         f"{marker['ready_to_healthy_seconds']:.2f} s", "< 2 s"),
    ]  # fmt: skip
    per_batch = metrics["observer_per_batch"]
    rows.insert(1, ("  of which the observer's calls, per batch",
                    f"{per_batch['off_us']:.2f} -> {per_batch['on_us']:.2f} µs", ""))  # fmt: skip
    lines = ["| figure | measured | target |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)
