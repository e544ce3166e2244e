"""trioproxy benchmark suite: direct, trioproxy variants, nginx and peers, side by side.

    python -m benchmarks.run [--quick | --smoke] [--only NAME,...] [--out benchmarks/results]

Everything runs on 127.0.0.1, started and stopped by this script; every load is bounded
in time and count. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
LITELLM_VENV = BENCH / ".venv-litellm"
PORTKEY_DIR = BENCH / ".portkey"
PORTKEY_JS = PORTKEY_DIR / "node_modules/@portkey-ai/gateway/build/start-server.js"
MASTER_KEY = "sk-bench-master"
ALL_TARGETS = [
    "direct",
    "trioproxy",
    "trioproxy-noledger",
    "trioproxy-httpx",
    "floor",
    "bare",
    "nginx",
    "litellm",
    "portkey",
]
TRIO_TARGETS = {"trioproxy", "trioproxy-noledger", "trioproxy-httpx"}
SMOKE_TARGETS = ("direct", "trioproxy", "floor", "bare")
JSON_REPLY = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    '"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
    '"content":"Hello! How can I help you today?"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
)
REQ_BODY = (
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# Figure 5 sends its 100,000 requests in more load runs if one falls short, up to this long.
LEAK_BUDGET = 400.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- process helpers


def tree_pids(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK_TCK


def cpu_busy_share(cpu: int, window: float) -> float:
    """Share of `cpu`'s time spent busy (not idle, not waiting on I/O) over `window` s."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    ticks = [int(x) for x in line.split()[1:]]
                    return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait
        return 0, 0

    total0, idle0 = sample()
    time.sleep(window)
    total1, idle1 = sample()
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total > 0 else 0.0


def settle(cfg: Cfg, *, quiet: float = 0.05, max_wait: float = 20.0) -> float:
    """Wait until the proxies' core is quiet; return the seconds waited.

    A target may go on working after its load ends (LiteLLM does, for seconds): that
    work must not be measured against the next target on the same core.
    """
    if not cfg.procs.pin:
        return 0.0
    start = time.monotonic()
    while time.monotonic() - start < max_wait:
        if cpu_busy_share(0, 0.25) <= quiet:
            break
    waited = time.monotonic() - start
    if waited >= max_wait:
        log(f"CPU 0 still busy after {max_wait:g} s; measuring anyway")
    elif waited >= 1.0:
        log(f"waited {waited:.1f} s for CPU 0 to go quiet")
    return waited


@contextmanager
def alone(live: dict[str, Target], name: str) -> Iterator[None]:
    """Freeze (SIGSTOP) every other target while `name` is measured, then resume them.

    Idle targets still wake up on the proxies' core: LiteLLM's background jobs and
    Portkey's timers, more of them the more requests a target has served. Measured
    beside them, trioproxy's p99 at one connection rose across repeats (1.05, 1.42,
    1.96 ms) where it stayed flat with only trioproxy variants running.
    """
    others = [
        t.proc
        for n, t in live.items()
        if n != name and t.proc is not None and t.proc.poll() is None
    ]
    for p in others:
        with suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in others:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total / 2**20


class Procs:
    def __init__(self, pin: bool, workdir: Path) -> None:
        self.pin = pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []

    def start(
        self,
        name: str,
        cmd: list[str],
        cpu: int | None,
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        if self.pin and cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        logf = open(self.workdir / f"{name}.log", "ab")
        p = subprocess.Popen(
            cmd,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=raise_nofile,
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(reversed(self.procs)):
            self.stop(p)

    def tail(self, name: str, n: int = 400) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    json_port: int = 0
    json_path: str = "/v1/chat/completions"
    sse_port: int = 0
    sse_path: str = "/v1/chat/completions"
    headers: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None  # the process measured for CPU / RSS
    unavailable: str | None = None
    restart: object = None  # callable returning a fresh Target (for the RSS figure)


NO_NATIVE = False  # --python-only: behave as if wrk and nginx were absent


def nginx_bin() -> str | None:
    if NO_NATIVE:
        return None
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )


def nginx_conf(workdir: Path, name: str, servers: str) -> Path:
    d = workdir / name
    d.mkdir(exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 10000; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    tcp_nodelay on;
{servers}
}}
""")
    return conf


def start_json_mock(procs: Procs, workdir: Path) -> tuple[int, str, subprocess.Popen]:
    """The fast upstream: nginx returning a fixed chat.completion (Python mock if no nginx)."""
    port = free_port()
    nb = nginx_bin()
    if nb:
        body = JSON_REPLY.replace("'", "\\'")
        conf = nginx_conf(
            workdir,
            "mock-nginx",
            f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}""",
        )
        p = procs.start(
            "mock-nginx", [nb, "-c", str(conf), "-e", str(conf.parent / "error.log")], cpu=1
        )
        kind = "nginx"
    else:
        p = procs.start(
            "mock-json", [PY, "-m", "benchmarks.sse_upstream", "--port", str(port)], cpu=1, cwd=ROOT
        )
        kind = "python (sse_upstream.py; nginx absent)"
    if not wait_port(port, 10, p):
        raise RuntimeError(f"JSON mock did not start: {procs.tail('mock-nginx')}")
    return port, kind, p


def start_sse_mock(procs: Procs) -> tuple[int, subprocess.Popen]:
    port = free_port()
    p = procs.start(
        "mock-sse", [PY, "-m", "benchmarks.sse_upstream", "--port", str(port)], cpu=1, cwd=ROOT
    )
    if not wait_port(port, 10, p):
        raise RuntimeError(f"SSE mock did not start: {procs.tail('mock-sse')}")
    return port, p


def start_trioproxy(
    procs: Procs, workdir: Path, name: str, json_port: int, sse_port: int
) -> Target:
    port = free_port()
    transport = "httpx" if name.endswith("httpx") else "h11"
    ledger = "false" if "noledger" in name else "true"
    db = workdir / f"{name}-{port}.sqlite"
    cfg = workdir / f"{name}.toml"
    cfg.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
max_connections = 10000
log_level = "warning"

[upstream]
transport = "{transport}"

[ledger]
enabled = {ledger}
path = "{db}"

[[routes]]
prefix = "/sse"
upstream = "http://127.0.0.1:{sse_port}"
flavour = "openai"

[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:{json_port}"
flavour = "openai"
""")
    exe = str(Path(PY).parent / "trioproxy")
    cmd = [exe] if os.path.exists(exe) else [PY, "-m", "trioproxy.cli"]
    p = procs.start(name, [*cmd, "run", "-c", str(cfg), "--log-level", "warning"], cpu=0, cwd=ROOT)
    if not wait_port(port, 20, p):
        procs.stop(p)
        return Target(name, unavailable=f"did not start: {procs.tail(name, 200)!r}")
    return Target(name, port, "/v1/chat/completions", port, "/sse/v1/chat/completions", proc=p)


def start_floor(procs: Procs, json_port: int, sse_port: int) -> Target:
    """The bare Trio + h11 proxy (floor_proxy.py), pinned like trioproxy."""
    p1, p2 = free_port(), free_port()
    p = procs.start(
        "floor",
        [PY, "-m", "benchmarks.floor_proxy", f"{p1}:{json_port}", f"{p2}:{sse_port}"],
        cpu=0,
        cwd=ROOT,
    )
    if not (wait_port(p1, 10, p) and wait_port(p2, 10, p)):
        return Target("floor", unavailable=f"did not start: {procs.tail('floor', 200)!r}")
    return Target("floor", p1, "/v1/chat/completions", p2, "/v1/chat/completions", proc=p)


def start_bare(procs: Procs) -> Target:
    """The bare Trio + h11 server (bare_server.py): no upstream, JSON figures only."""
    port = free_port()
    p = procs.start("bare", [PY, "-m", "benchmarks.bare_server", str(port)], cpu=0, cwd=ROOT)
    if not wait_port(port, 10, p):
        return Target("bare", unavailable=f"did not start: {procs.tail('bare', 200)!r}")
    return Target("bare", port, "/v1/chat/completions", proc=p)


def start_nginx_proxy(procs: Procs, workdir: Path, json_port: int, sse_port: int) -> Target:
    nb = nginx_bin()
    if not nb:
        return Target("nginx", unavailable="nginx not installed")
    p1, p2 = free_port(), free_port()
    common = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;"""
    conf = nginx_conf(
        workdir,
        "proxy-nginx",
        f"""
    upstream json_up {{ server 127.0.0.1:{json_port}; keepalive 128; keepalive_requests 1000000; }}
    upstream sse_up {{ server 127.0.0.1:{sse_port}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{p1} backlog=4096;
        location / {{ proxy_pass http://json_up; {common} }}
    }}
    server {{
        listen 127.0.0.1:{p2} backlog=4096;
        location / {{ proxy_pass http://sse_up; {common} }}
    }}""",
    )
    p = procs.start(
        "proxy-nginx", [nb, "-c", str(conf), "-e", str(conf.parent / "error.log")], cpu=0
    )
    if not (wait_port(p1, 10, p) and wait_port(p2, 10, p)):
        return Target("nginx", unavailable=f"did not start: {procs.tail('proxy-nginx', 200)!r}")
    return Target("nginx", p1, "/v1/chat/completions", p2, "/v1/chat/completions", proc=p)


def start_litellm(procs: Procs, workdir: Path, json_port: int) -> Target:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        return Target(
            "litellm", unavailable="litellm[proxy] venv missing (benchmarks/setup.sh failed?)"
        )
    port = free_port()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{json_port}/v1
      api_key: sk-mock
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  telemetry: false
  set_verbose: false
""")
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
        "DISABLE_ADMIN_UI": "True",
    }
    p = procs.start(
        "litellm",
        [
            str(exe),
            "--config",
            str(cfg),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        cpu=0,
        env=env,
        cwd=workdir,
    )
    if not wait_port(port, 120, p):
        procs.stop(p)
        return Target("litellm", unavailable=f"did not start: {procs.tail('litellm', 200)!r}")
    return Target(
        "litellm",
        port,
        "/v1/chat/completions",
        0,
        "",
        [f"Authorization: Bearer {MASTER_KEY}"],
        proc=p,
    )


def start_portkey(procs: Procs, json_port: int) -> Target:
    node = shutil.which("node")
    if not node or not PORTKEY_JS.exists():
        return Target(
            "portkey", unavailable="@portkey-ai/gateway not installed (benchmarks/setup.sh failed?)"
        )
    port = free_port()
    p = procs.start("portkey", [node, str(PORTKEY_JS), f"--port={port}"], cpu=0, cwd=PORTKEY_DIR)
    if not wait_port(port, 60, p):
        procs.stop(p)
        return Target("portkey", unavailable=f"did not start: {procs.tail('portkey', 200)!r}")
    return Target(
        "portkey",
        port,
        "/v1/chat/completions",
        0,
        "",
        [
            "Authorization: Bearer sk-mock",
            "x-portkey-provider: openai",
            f"x-portkey-custom-host: http://127.0.0.1:{json_port}/v1",
        ],
        proc=p,
    )


# ---------------------------------------------------------------- load runners


def parse_dur_ms(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


def wrk_script(workdir: Path, t: Target, limit: int | None = None) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = '{REQ_BODY}'",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    for h in t.headers:
        k, _, v = h.partition(":")
        lines.append(f'wrk.headers["{k.strip()}"] = "{v.strip()}"')
    if limit:
        lines += [
            "local n = 0",
            "function response(status, headers, body)",
            f"  n = n + 1; if n >= {limit} then wrk.thread:stop() end",
            "end",
        ]
    path = workdir / f"wrk-{t.name}-{limit or 0}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def send_requests(
    cfg: Cfg, t: Target, n: int, rate: float, budget: float = LEAK_BUDGET
) -> tuple[int, float]:
    """Send about n requests at 50 connections, in as many load runs as it takes within
    `budget` seconds; return how many were sent and the last rate measured."""
    sent, spent = 0, 0.0
    while sent < n and spent < budget:
        # wrk stops sending at the limit but waits out -d: size -d from the rate
        seconds = min(budget - spent, (n - sent) / rate * 1.1 + 1)
        got = http_load(cfg, t, 50, seconds, limit=n - sent).get("requests") or 0
        if not got:
            break
        sent += got
        spent += seconds
        rate = max(got / seconds, 1.0)
    return sent, rate


def http_load(cfg: Cfg, t: Target, conns: int, seconds: float, limit: int | None = None) -> dict:
    """req/s and latency percentiles with wrk if present, else benchmarks/load.py."""
    pin = ["taskset", "-c", "1"] if cfg.procs.pin else []
    if cfg.wrk:
        script = wrk_script(cfg.workdir, t, limit)
        cmd = [
            *pin,
            cfg.wrk,
            "-t1",
            f"-c{conns}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{t.json_port}{t.json_path}",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        out = r.stdout
        res: dict = {"client": "wrk", "errors": 0}
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        res["rps"] = float(m.group(1)) if m else 0.0
        m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
        res["requests"] = int(m.group(1)) if m else 0
        for pct in ("50", "99"):
            m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
            res[f"p{pct}_ms"] = parse_dur_ms(m.group(1)) if m else None
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            res["errors"] += int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            res["errors"] += sum(int(x) for x in m.groups())
        if r.returncode != 0 or not res["requests"]:
            res["errors"] = res.get("errors", 0) + 1
            res["stderr"] = (r.stderr or out)[-300:]
        return res
    cmd = [
        *pin,
        PY,
        "-m",
        "benchmarks.load",
        "--port",
        str(t.json_port),
        "--path",
        t.json_path,
        "-c",
        str(conns),
        "-d",
        str(seconds),
    ]
    if limit:
        cmd += ["-n", str(-(-limit // conns))]
    for h in t.headers:
        cmd += ["--header", h]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {
            "client": "load.py",
            "rps": 0.0,
            "requests": 0,
            "errors": 1,
            "stderr": r.stderr[-300:],
        }


def sse_run(
    cfg: Cfg,
    t: Target,
    streams: int,
    conc: int,
    events: int,
    interval_ms: int,
    ramp: float = 0.0,
    timeout: float = 60.0,
    each_event: bool = False,
) -> dict:
    pin = ["taskset", "-c", "1"] if cfg.procs.pin else []
    cmd = [
        *pin,
        PY,
        "-m",
        "benchmarks.sse_client",
        "--port",
        str(t.sse_port),
        "--path",
        t.sse_path,
        "--streams",
        str(streams),
        "--concurrency",
        str(conc),
        "--events",
        str(events),
        "--interval-ms",
        str(interval_ms),
        "--ramp",
        str(ramp),
        "--timeout",
        str(timeout),
    ]
    for h in t.headers:
        cmd += ["--header", h]
    if each_event:
        cmd.append("--each-event")
    total = ramp + timeout * (-(-streams // conc)) + 30
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=total, cwd=ROOT)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {
            "errors": streams,
            "events": 0,
            "ttfb_ms": [],
            "lateness_ms": [],
            "first_event_ms": [],
            "error_kinds": {"client": r.stderr[-300:]},
        }


def pct(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile: the p99 of 300 values is the 4th largest."""
    if not values:
        return None
    v = sorted(values)
    rank = math.ceil(round(p * len(v), 9))  # round: 0.29 * 100 is 28.999999999999996
    return v[max(0, rank - 1)]


def med(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


# ---------------------------------------------------------------- the suite


@dataclass
class Cfg:
    mode: str
    procs: Procs
    workdir: Path
    wrk: str | None
    repeats: int
    tput_s: float
    lat_s: float
    warm_s: float
    sse_streams: int
    sse_conc: int
    cap_steps: list[int]
    idle_conns: int
    leak_requests: int
    figures: set = field(default_factory=lambda: set("abcde"))
    ttfb_streams: int = 300  # figure 3's time to first byte: short streams, one at a time


def machine() -> dict:
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def ensure_installed(want: set[str]) -> None:
    parts = []
    if not shutil.which("wrk") or not nginx_bin():
        parts.append("system")
    if "litellm" in want and not (LITELLM_VENV / "bin/litellm").exists():
        parts.append("litellm")
    if "portkey" in want and not PORTKEY_JS.exists():
        parts.append("portkey")
    if parts:
        log(f"installing: {' '.join(parts)} (benchmarks/setup.sh)")
        subprocess.run(["bash", str(BENCH / "setup.sh"), *parts], timeout=1800)


def run_suite(args: argparse.Namespace) -> int:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    targets = (
        ALL_TARGETS if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    )
    if args.smoke:
        targets = [n for n in targets if n in SMOKE_TARGETS] or list(SMOKE_TARGETS)
    if "direct" not in targets:
        targets = ["direct", *targets]
    unknown = set(targets) - set(ALL_TARGETS)
    if unknown:
        print(
            f"unknown target(s): {', '.join(sorted(unknown))}; known: {', '.join(ALL_TARGETS)}",
            file=sys.stderr,
        )
        return 2
    if not args.smoke:
        ensure_installed(set(targets))
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="trioproxy-bench-"))
    procs = Procs(pin=not args.smoke, workdir=workdir)
    if args.smoke:
        cfg = Cfg(mode, procs, workdir, shutil.which("wrk"), 1, 2, 1, 0.5, 10, 10, [], 0, 0)
    elif args.quick:
        cfg = Cfg(
            mode,
            procs,
            workdir,
            shutil.which("wrk"),
            1,
            3,
            2,
            1,
            24,
            4,
            [250, 500, 1000, 2000],
            200,
            10_000,
        )
    else:
        cfg = Cfg(
            mode,
            procs,
            workdir,
            shutil.which("wrk"),
            3,
            10,
            5,
            2,
            60,
            4,
            [250, 500, 1000, 2000],
            1000,
            100_000,
        )
    cfg.figures = set(args.figures.replace(",", ""))
    if args.smoke or args.quick:
        cfg.ttfb_streams = 10 if args.smoke else 100
    if args.python_only:
        global NO_NATIVE
        NO_NATIVE = True
        cfg.wrk = None
    started = dt.datetime.now()
    result: dict = {
        "machine": machine(),
        "date": started.isoformat(timespec="seconds"),
        "mode": mode,
        "pinned": procs.pin,
        "load_client": "wrk" if cfg.wrk else "load.py",
        "figures": "".join(sorted(cfg.figures)),
        "sse": {"ttfb_streams": cfg.ttfb_streams, "paced_streams": cfg.sse_streams,
                "paced_concurrency": cfg.sse_conc},
        "targets": {},
    }
    try:
        ok = _run(cfg, targets, result)
    except Exception as exc:  # keep what was measured; the report names the failure
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    finally:
        procs.stop_all()
    result["duration_s"] = round((dt.datetime.now() - started).total_seconds(), 1)
    md = render(result)
    print(md)
    out = Path(args.out)
    if not args.smoke or args.save:
        out.mkdir(parents=True, exist_ok=True)
        stem = started.strftime("%Y-%m-%d-%H%M") + ("" if mode == "full" else f"-{mode}")
        (out / f"{stem}.md").write_text(md)
        (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
        log(f"saved {out / stem}.md and .json")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _run(cfg: Cfg, targets: list[str], result: dict) -> bool:
    procs, workdir = cfg.procs, cfg.workdir
    json_port, json_kind, _ = start_json_mock(procs, workdir)
    sse_port, _ = start_sse_mock(procs)
    result["json_mock"] = json_kind
    res = result["targets"]

    def make(name: str) -> Target:
        if name == "direct":
            return Target(
                "direct", json_port, "/v1/chat/completions", sse_port, "/v1/chat/completions"
            )
        if name in TRIO_TARGETS:
            return start_trioproxy(procs, workdir, name, json_port, sse_port)
        if name == "floor":
            return start_floor(procs, json_port, sse_port)
        if name == "bare":
            return start_bare(procs)
        if name == "nginx":
            return start_nginx_proxy(procs, workdir, json_port, sse_port)
        if name == "litellm":
            return start_litellm(procs, workdir, json_port)
        if name == "portkey":
            return start_portkey(procs, json_port)
        raise KeyError(name)

    live: dict[str, Target] = {}
    for name in targets:
        log(f"starting {name}")
        t = make(name)
        if t.unavailable:
            log(f"{name}: not available: {t.unavailable}")
            res[name] = {"unavailable": t.unavailable}
            continue
        live[name] = t
        res[name] = {"tput": [], "lat1": []}
    if cfg.mode == "smoke" and any(n not in live for n in targets if n != "direct"):
        return False  # our own code (trioproxy, the floor) did not run

    # warm-up
    for name, t in live.items():
        w = http_load(cfg, t, 50 if name != "litellm" else 10, cfg.warm_s)
        log(f"warm-up {name}: {w.get('rps', 0):.0f} req/s, errors {w.get('errors')}")
        if w.get("requests", 0) == 0:
            res[name] = {"unavailable": f"no successful request in warm-up: {w.get('stderr', '')}"}
    live = {n: t for n, t in live.items() if "unavailable" not in res[n]}

    # figures a and b, interleaved across targets, repeated
    for rep in range(cfg.repeats if {"a", "b"} & cfg.figures else 0):
        for name, t in live.items():
            with alone(live, name):
                settle(cfg)
                a = http_load(cfg, t, 50, cfg.tput_s)
                settle(cfg)
                b = http_load(cfg, t, 1, cfg.lat_s)
            res[name]["tput"].append(a)
            res[name]["lat1"].append(b)
            log(
                f"[{rep + 1}/{cfg.repeats}] {name}: {a.get('rps', 0):.0f} req/s (err {a.get('errors')}),"
                f" c1 p50 {b.get('p50_ms')} ms p99 {b.get('p99_ms')} ms"
            )

    # figure c: paced streams, 50 events 20 ms apart. Each target first relays a few
    # short streams (its first stream opens the upstream connection and runs code the
    # JSON warm-up did not). Starts are spread one stream length / concurrency apart:
    # streams of equal length started together end together and restart together, and
    # each one's time to first byte would include the other starts' work.
    sse_targets = {n: t for n, t in live.items() if t.sse_port}
    spread = cfg.sse_streams * (50 * 0.020) / cfg.sse_conc
    for name, t in sse_targets.items() if "c" in cfg.figures else ():
        with alone(live, name):
            sse_run(cfg, t, cfg.sse_conc, cfg.sse_conc, 5, 20)
    for rep in range(cfg.repeats if "c" in cfg.figures else 0):
        for name, t in sse_targets.items():
            with alone(live, name):
                settle(cfg)
                r = sse_run(
                    cfg, t, cfg.sse_streams, cfg.sse_conc, 50, 20, ramp=spread, each_event=True
                )
                # Time to first byte from many short streams, one at a time: a p99 of
                # the paced run's 60 streams is in effect their worst.
                q = sse_run(cfg, t, cfg.ttfb_streams, 1, 3, 5)
            res[name].setdefault("sse", []).append(
                {
                    "ttfb_p50": pct(q["ttfb_ms"], 0.5),
                    "ttfb_p99": pct(q["ttfb_ms"], 0.99),
                    "paced_ttfb_p50": pct(r["ttfb_ms"], 0.5),
                    "paced_ttfb_p99": pct(r["ttfb_ms"], 0.99),
                    "late_max": max(r["lateness_ms"]) if r["lateness_ms"] else None,
                    # Over every event: over the 60 streams' worst ones, a p99 is the max.
                    "late_p99": pct(r.get("event_lateness_ms", []), 0.99),
                    "errors": r["errors"] + q["errors"],
                    "error_kinds": dict(
                        Counter(r.get("error_kinds") or {}) + Counter(q.get("error_kinds") or {})
                    ),
                    "events": r["events"],
                }
            )
            log(
                f"sse {name}: ttfb p50 {pct(q['ttfb_ms'], 0.5)} p99 {pct(q['ttfb_ms'], 0.99)} ms,"
                f" worst lateness {res[name]['sse'][-1]['late_max']} ms,"
                f" errors {r['errors'] + q['errors']}"
            )

    # figure d: concurrent paced streams (slower pace so that the mock and the client keep up)
    for name, t in sse_targets.items() if cfg.cap_steps and "d" in cfg.figures else ():
        held, cpu_per_event, steps = 0, None, []
        for n in cfg.cap_steps:
            with alone(live, name):
                c0 = cpu_seconds(t.proc.pid) if t.proc else None
                r = sse_run(cfg, t, n, n, 20, 250, ramp=1.0, timeout=40, each_event=True)
                c1 = cpu_seconds(t.proc.pid) if t.proc else None
            step = {
                "streams": n,
                "errors": r["errors"],
                "events": r["events"],
                "error_kinds": r.get("error_kinds"),
                "late_max": max(r["lateness_ms"] or [0]),
                "late_p99": pct(r.get("event_lateness_ms", []), 0.99),  # over every event
            }
            if c0 is not None and r["events"]:
                step["cpu_us_per_event"] = (c1 - c0) * 1e6 / r["events"]
            steps.append(step)
            log(
                f"streams {name} x{n}: errors {r['errors']}, events {r['events']}, "
                f"cpu/event {step.get('cpu_us_per_event')}"
            )
            if r["errors"]:
                break
            held, cpu_per_event = n, step.get("cpu_us_per_event")
        res[name]["capacity"] = {"held": held, "cpu_us_per_event": cpu_per_event, "steps": steps}

    # figure e: RSS, on a fresh process per proxy
    if cfg.idle_conns and "e" in cfg.figures:
        for name in [n for n in live if n in TRIO_TARGETS or n == "nginx"]:
            procs.stop(live[name].proc)
            t = make(name)
            if t.unavailable:
                res[name]["rss"] = {"error": t.unavailable}
                continue
            live[name] = t
            pid = t.proc.pid
            http_load(cfg, t, 1, 0.5, limit=100)
            time.sleep(0.5)
            idle = rss_mb(pid)
            pin = ["taskset", "-c", "1"] if procs.pin else []
            hold = subprocess.Popen(
                [
                    *pin,
                    PY,
                    "-m",
                    "benchmarks.load",
                    "--port",
                    str(t.json_port),
                    "--path",
                    t.json_path,
                    "-c",
                    str(cfg.idle_conns),
                    "--hold",
                    "4",
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            line = hold.stdout.readline()
            held_n = int(line.split()[1]) if line.startswith("HOLDING") else 0
            time.sleep(1)
            with_conns = rss_mb(pid)
            hold.wait(30)
            time.sleep(1)
            rate = med([x.get("rps") for x in res[name]["tput"]]) or 1000.0
            _, rate = send_requests(cfg, t, cfg.leak_requests // 10, rate)
            base = rss_mb(pid)
            sent, _ = send_requests(cfg, t, cfg.leak_requests, rate)
            time.sleep(0.5)
            after = rss_mb(pid)
            res[name]["rss"] = {
                "idle_mb": idle,
                "conns": held_n,
                "with_conns_mb": with_conns,
                "kb_per_conn": (with_conns - idle) * 1024 / held_n if held_n else None,
                "baseline_mb": base,
                "requests": sent,
                "after_mb": after,
                "growth_pct": (after - base) / base * 100 if base else None,
            }
            log(f"rss {name}: {res[name]['rss']}")
    return "trioproxy" not in targets or "trioproxy" in live


# ---------------------------------------------------------------- report


def fmt(v, nd: int = 2, suffix: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}{suffix}"
        return f"{v:.{nd}f}{suffix}"
    return f"{v}{suffix}"


def ratio(a, b) -> str:
    if a is None or b in (None, 0):
        return "–"
    r = a / b
    return f"{r:.2f}×" if abs(r) >= 0.1 else f"{r:.2g}×"


def minus(a, b):
    """a - b, or None when either is missing."""
    return a - b if a is not None and b is not None else None


def summarize(result: dict) -> dict:
    s = {}
    for name, r in result["targets"].items():
        if "unavailable" in r:
            continue
        row: dict = {}
        row["rps"] = med([x.get("rps") for x in r["tput"]])
        row["tput_errors"] = sum(x.get("errors", 0) for x in r["tput"])
        row["client"] = r["tput"][0].get("client") if r["tput"] else "–"
        row["p50"] = med([x.get("p50_ms") for x in r["lat1"]])
        row["p99"] = med([x.get("p99_ms") for x in r["lat1"]])
        if r.get("sse"):
            for k in ("ttfb_p50", "ttfb_p99", "late_max", "late_p99"):
                row[k] = med([x[k] for x in r["sse"]])
            row["sse_errors"] = sum(x["errors"] for x in r["sse"])
        s[name] = row
    return s


def floor_lines(s: dict, caps: dict) -> list[str]:
    """Each trioproxy variant against the bare Trio + h11 proxy measured in the same run."""
    f = s.get("floor")
    if not f:
        return []
    d = s.get("direct", {})
    f_cpu = caps.get("floor", {}).get("cpu_us_per_event")

    def added(row: dict, k: str):
        return minus(row.get(k), d.get(k))

    def diff_us(a, b):
        diff = minus(a, b)
        return fmt(diff * 1000, 0, " µs") if diff is not None else "–"

    out = [
        "",
        "## Against the floor: a bare Trio + h11 proxy (`benchmarks/floor_proxy.py`), same run",
        "",
        "The floor does only what any Trio + h11 proxy must (no deadlines, disconnect watch,"
        " usage scan, ledger or error answers); the gap is what trioproxy's job costs.",
        "",
        "| target | req/s vs floor | added p50 − floor's | added p99 − floor's | CPU µs/event (figure 4) vs floor's |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| floor | {fmt(f['rps'])} req/s | {fmt(added(f, 'p50'), 3)} ms | {fmt(added(f, 'p99'), 3)} ms "
        f"| {fmt(f_cpu, 1)} |",
    ]
    for name, row in s.items():
        if name not in TRIO_TARGETS:
            continue
        cpu = caps.get(name, {}).get("cpu_us_per_event")
        share = f"{row['rps'] / f['rps'] * 100:.0f}%" if row.get("rps") and f.get("rps") else "–"
        out.append(
            f"| {name} | {share} | {diff_us(added(row, 'p50'), added(f, 'p50'))} "
            f"| {diff_us(added(row, 'p99'), added(f, 'p99'))} | {fmt(cpu, 1)} vs {fmt(f_cpu, 1)} |"
        )
    return out


# The figures "measured here before this project existed, for orientation", and
# the targets it set beside them: (label, target, summary key, value then, unit).
ORIENTATION = [
    ("nginx proxy, req/s @50", "nginx", "rps", 62_000.0),
    ("bare Trio + h11 server, req/s @50", "bare", "rps", 12_800.0),
    ("Trio + h11 proxy (the floor), req/s @50", "floor", "rps", 5_700.0),
    ("the floor, added p50 @1 (ms)", "floor", "add_p50", 0.17),
    ("LiteLLM, req/s @50", "litellm", "rps", 150.0),
    ("LiteLLM, added p50 @1 (ms)", "litellm", "add_p50", 6.0),
    ("Portkey, req/s @50", "portkey", "rps", 1_240.0),
]
TARGET_RPS, TARGET_ADD_P50 = 5_000.0, 0.25


def orientation_lines(s: dict) -> list[str]:
    """This run beside the issue's orientation figures, and its targets read the same way."""
    d = s.get("direct", {})

    def value(name: str, key: str):
        row = s.get(name)
        if not row:
            return None
        return minus(row.get("p50"), d.get("p50")) if key == "add_p50" else row.get(key)

    out = [
        "",
        "## This machine against the issue's orientation figures",
        "",
        "The issue measured these on this kind of machine before trioproxy existed and set"
        " its targets beside them. How this run compares shows how fast the machine is today.",
        "",
        "| reference | then | this run | this run ÷ then |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, name, key, then in ORIENTATION:
        now = value(name, key)
        nd = 3 if key == "add_p50" else 0
        out.append(f"| {label} | {fmt(then, nd)} | {fmt(now, nd)} | {ratio(now, then)} |")
    floor_rps, floor_p50 = value("floor", "rps"), value("floor", "add_p50")
    out += [
        "",
        f"The targets against the floor as the issue measured it: {TARGET_RPS:,.0f} req/s is"
        f" {TARGET_RPS / 5_700 * 100:.0f}% of its 5,700, and {TARGET_ADD_P50} ms added p50 is"
        f" {(TARGET_ADD_P50 - 0.17) * 1000:.0f} µs over its 0.17 ms. In this run:",
        "",
        "| target | req/s vs floor (issue: "
        f"{TARGET_RPS / 5_700 * 100:.0f}%) | added p50 − floor's (issue: "
        f"{(TARGET_ADD_P50 - 0.17) * 1000:.0f} µs) |",
        "| --- | ---: | ---: |",
    ]
    for name in TRIO_TARGETS & s.keys():
        rps, p50 = value(name, "rps"), value(name, "add_p50")
        share = f"{rps / floor_rps * 100:.0f}%" if rps and floor_rps else "–"
        over = minus(p50, floor_p50)
        out.append(f"| {name} | {share} | {fmt(over * 1000, 0, ' µs') if over is not None else '–'} |")
    return out


def render(result: dict) -> str:
    m = result["machine"]
    s = summarize(result)
    result["summary"] = s
    d, n = s.get("direct", {}), s.get("nginx", {})
    out = [
        f"# trioproxy benchmarks — {result['date']} ({result['mode']} mode)",
        "",
        f"Machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}, Linux {m['kernel']}. "
        f"Pinned: {'yes (proxy on CPU 0; load, mocks, clients on CPU 1)' if result['pinned'] else 'no'}. "
        f"JSON upstream mock: {result.get('json_mock', '?')}. HTTP load client: {result['load_client']}. "
        f"Run took {result.get('duration_s', '?')} s. Medians of "
        f"{len(next(iter(result['targets'].values()), {}).get('tput', [])) or 1} run(s). "
        f"Figures: {result.get('figures', 'abcde')}.",
        "",
        "## Requests (figures 1, 2): small JSON POST",
        "",
        "| target | req/s @50 conns | vs direct | vs nginx | errors | added p50 @1 conn (ms) | added p99 @1 conn (ms) | added p50 vs nginx | client |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in result["targets"].items():
        if "unavailable" in r:
            out.append(
                f"| {name} | not available: {r['unavailable'][:150].replace('|', '/')} | | | | | | | |"
            )
            continue
        row = s[name]
        if name == "direct":
            add50, add99 = row["p50"], row["p99"]
            out.append(
                f"| direct (absolute latency) | {fmt(row['rps'])} | 1.00× | {ratio(row['rps'], n.get('rps'))} "
                f"| {row['tput_errors']} | {fmt(add50, 3)} (abs) | {fmt(add99, 3)} (abs) | – | {row['client']} |"
            )
            continue
        add50, add99 = minus(row["p50"], d.get("p50")), minus(row["p99"], d.get("p99"))
        n50 = minus(n.get("p50"), d.get("p50"))
        out.append(
            f"| {name} | {fmt(row['rps'])} | {ratio(row['rps'], d.get('rps'))} | {ratio(row['rps'], n.get('rps'))} "
            f"| {row['tput_errors']} | {fmt(add50, 3)} | {fmt(add99, 3)} | {ratio(add50, n50) if name != 'nginx' else '1.00×'} | {row['client']} |"
        )
    if any("ttfb_p50" in r for r in s.values()):
        sse = result.get("sse", {})
        out += [
            "",
            "## Paced SSE streams (figure 3): 50 events 20 ms apart, usage chunk, [DONE]",
            "",
            f"Time to first byte: {sse.get('ttfb_streams', '?')} short streams (3 events), one at"
            f" a time. Lateness: {sse.get('paced_streams', '?')} paced streams,"
            f" {sse.get('paced_concurrency', '?')} at a time.",
            "",
            "| target | TTFB p50 (ms) | TTFB p99 (ms) | added TTFB p50 | added TTFB p99 | worst event lateness (ms) | added worst lateness | added p99 event lateness | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, row in s.items():
            if "ttfb_p50" not in row:
                continue

            def add(k):
                return minus(row.get(k), d.get(k))

            out.append(
                f"| {name} | {fmt(row['ttfb_p50'], 3)} | {fmt(row['ttfb_p99'], 3)} | {fmt(add('ttfb_p50'), 3)} "
                f"| {fmt(add('ttfb_p99'), 3)} | {fmt(row['late_max'], 3)} | {fmt(add('late_max'), 3)} "
                f"| {fmt(add('late_p99'), 3)} | {row['sse_errors']} |"
            )
    caps = {k: v["capacity"] for k, v in result["targets"].items() if "capacity" in v}
    if caps:
        out += [
            "",
            "## Concurrent paced streams (figure 4): 20 events 250 ms apart, starts spread over 1 s",
            "",
            "| target | most streams held, 0 errors | CPU µs/event (proxy) | worst lateness at that step (ms) | steps: streams: errors (p99 event lateness, ms) |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for name, c in caps.items():
            last = next((st for st in c["steps"] if st["streams"] == c["held"]), {})
            steps = ", ".join(
                f"{st['streams']}: {st['errors']} ({fmt(st.get('late_p99'), 1)})" for st in c["steps"]
            )
            out.append(
                f"| {name} | {c['held']} | {fmt(c['cpu_us_per_event'], 1)} | {fmt(last.get('late_max'), 1)} | {steps} |"
            )
    out += floor_lines(s, caps)
    out += orientation_lines(s)
    rss = {k: v["rss"] for k, v in result["targets"].items() if "rss" in v}
    if rss:
        out += [
            "",
            "## Memory (figure 5): RSS of the proxy process (tree)",
            "",
            "| target | idle (MB) | idle conns held | with them (MB) | KB per idle conn | before (MB) | requests | after (MB) | growth |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, r in rss.items():
            if "error" in r:
                out.append(f"| {name} | not available: {r['error'][:100]} | | | | | | | |")
                continue
            out.append(
                f"| {name} | {fmt(r['idle_mb'], 1)} | {r['conns']} | {fmt(r['with_conns_mb'], 1)} | {fmt(r['kb_per_conn'], 1)} "
                f"| {fmt(r['baseline_mb'], 1)} | {r['requests']} | {fmt(r['after_mb'], 1)} | {fmt(r['growth_pct'], 1, '%')} |"
            )
    if result.get("error"):
        out += ["", f"**The run stopped early:** {result['error']}"]
    out += [
        "",
        "Added = target − direct (the same figure measured straight to the mock). Ratios: "
        "req/s ÷ direct, req/s ÷ nginx, added latency ÷ nginx's added latency.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = ap.add_mutually_exclusive_group()
    g.add_argument(
        "--quick", action="store_true", help="1 repeat, short runs, 200 idle conns, 10k requests"
    )
    g.add_argument(
        "--smoke",
        action="store_true",
        help="CI: direct, trioproxy and the floor, no installs, no pinning, ~17 s;"
        " fails only if trioproxy or the floor does not run",
    )
    ap.add_argument(
        "--only", help=f"comma-separated targets ({','.join(ALL_TARGETS)}); direct always runs"
    )
    ap.add_argument(
        "--figures",
        default="abcde",
        help="which figures: a req/s, b latency, c SSE latency, d streams, e RSS (default abcde)",
    )
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument(
        "--python-only",
        action="store_true",
        help="use load.py and the Python JSON mock even if wrk / nginx exist (as in CI)",
    )
    ap.add_argument("--save", action="store_true", help="save results in --smoke mode too")
    return run_suite(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
