"""The processes a bench run starts (the Flex sandbox, the shop's web workers and its relay,
or several of those around one PostgreSQL server) and the CPU time they use, read from /proc."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import requests

import flex_sandbox

from .postgres import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]
WORKERS, THREADS = 2, 8
PROCESSOR_MS = 80
# The relay as docs/DEPLOY.md runs it: niced, so the web workers' requests come first.
RELAY_PRIORITY = ("nice", "-n", "10")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A server process in its own process group, killed with everything it started."""

    def __init__(self, args: list[str], env: dict, url: str | None = None,
                 cpus: tuple[int, ...] | None = None):
        """Starts `args` (on `cpus` only, if given: taskset); waits until `url` answers, if
        it is given."""
        self.url = url
        if cpus:
            args = ["taskset", "-c", ",".join(map(str, cpus)), *args]
        self.popen = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        if url is None:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=5)
                return
            except requests.RequestException:  # not listening yet, or still starting
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{args} did not come up")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.popen.pid, signal.SIGKILL)


def gunicorn(factory: str, port: int, workers: int, threads: int,
             connections: int | None = None) -> list[str]:
    """The command line; `connections`: the most a worker holds open at once."""
    cap = ["--worker-connections", str(connections)] if connections else []
    return [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
            "--keep-alive", "75", *cap, "-b", f"127.0.0.1:{port}", factory]


class Sandbox(Process):
    """The Flex sandbox as its own gunicorn process (1 worker: its state is in memory)."""

    def __init__(self, cpus: tuple[int, ...] | None = None):
        port = free_port()
        super().__init__(gunicorn("flex_sandbox:create_sandbox_app()", port, 1, 32),
                         {"FLEX_SANDBOX_FAULTS": ""}, f"http://127.0.0.1:{port}/widget.js",
                         cpus)
        self.base_url = self.url.rsplit("/", 1)[0]

    def cpu_seconds(self) -> float:
        return sum(map(cpu_seconds, children(self.pid)))

    def set_faults(self, faults: dict) -> None:
        """Resets the sandbox (which also empties its call view) and sets `faults`."""
        requests.post(f"{self.base_url}/_sandbox/reset", timeout=5).raise_for_status()
        for endpoint, spec in faults.items():
            requests.put(f"{self.base_url}/_sandbox/faults/{endpoint}", json=spec,
                         timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        """Removes every fault, which also releases calls held by a "hang" fault."""
        requests.delete(f"{self.base_url}/_sandbox/faults", timeout=5)

    def calls(self) -> list[dict]:
        return requests.get(f"{self.base_url}/_sandbox/calls", timeout=10).json()


class Cpu(NamedTuple):
    """CPU seconds used so far by a shop's processes."""

    web: float  # the web workers
    relay: float  # the relay processes
    database: float = 0.0  # a PostgreSQL server; SQLite's work is the web workers' own


class Shop:
    """The web workers and, in the production layout, the relay process beside them."""

    def __init__(self, env: dict, *, factory: str = "app:create_app()", relay: bool = True,
                 cpus: tuple[int, ...] | None = None, shoppers: int | None = None):
        """`cpus`: the cores the web workers and the relay run on (all, if None);
        `shoppers`: the most that shop at once, each on a kept-alive connection. Each worker
        takes an equal share of them: left to the kernel, one worker got 20 of 32 and the
        other 12 (17/15 and 18/14 in the next turns), and as each worker is one GIL, the
        fuller one's shoppers waited longer, so a turn's p95 followed the split, not Flex."""
        port = free_port()
        self.database = env.get("DATABASE_URL") or env["DATABASE"]  # a URL or a SQLite file
        share = -(-shoppers // WORKERS) if shoppers else None
        self.web = Process(gunicorn(factory, port, WORKERS, THREADS, share), env,
                           f"http://127.0.0.1:{port}/", cpus)
        self.url = self.web.url
        self.relay = None
        if relay:
            self.relay = Process([*RELAY_PRIORITY, sys.executable, "-m", "flask", "--app",
                                  "app", "flex", "relay"], env, cpus=cpus)

    @property
    def urls(self) -> list[str]:
        return [self.url]

    def cpu_seconds(self) -> Cpu:
        web = sum(map(cpu_seconds, children(self.web.pid)))
        return Cpu(web, cpu_seconds(self.relay.pid) if self.relay else 0.0)

    def stop(self) -> None:
        self.web.stop()
        if self.relay:
            self.relay.stop()


class Cluster:
    """The shop as deployed on several machines (docs/DEPLOY.md): `nodes` web nodes (each a
    gunicorn master, FLEX_RELAY=0) and as many relay processes, on one PostgreSQL database
    (a schema of its own in `postgres`). Every node signs sessions with the same key."""

    def __init__(self, env: dict, postgres: PostgresCluster, nodes: int = 2,
                 shoppers: int | None = None):
        """`shoppers`: the most that shop at once, spread evenly over the nodes."""
        self.postgres = postgres
        self.database = postgres.create_schema()
        self.nodes: list[Shop] = []
        try:
            for _ in range(nodes):
                self.nodes.append(Shop({**env, "DATABASE_URL": self.database},
                                       shoppers=shoppers and -(-shoppers // nodes)))
        except Exception:
            self.stop()
            raise

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def cpu_seconds(self) -> Cpu:
        used = [node.cpu_seconds() for node in self.nodes]
        return Cpu(sum(u.web for u in used), sum(u.relay for u in used),
                   postgres_cpu_seconds(self.postgres))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def postgres_cpu_seconds(postgres: PostgresCluster, *, ended_too: bool = False) -> float:
    """CPU seconds of the PostgreSQL server: its postmaster and the backends alive now (the
    connection pools' stay), plus, if `ended_too`, those that have ended."""
    postmaster = int((postgres.data / "postmaster.pid").read_text().split("\n", 1)[0])
    return (sum(map(cpu_seconds, [postmaster, *children(postmaster)]))
            + (cpu_seconds(postmaster, children=True) if ended_too else 0.0))


def shop_env(database: str, sandbox_url: str, *, flex_enabled: bool = True,
             relay_in_web: bool = False) -> dict:
    return {
        "FLASK_SKIP_DOTENV": "1",  # the bench's own settings, whatever a .env says
        # Development mode only because production cookies are Secure (HTTPS) and this is
        # plain HTTP on loopback; nothing else differs.
        "SECRET_KEY": secrets.token_hex(32), "DATABASE": database,
        "LOG_LEVEL": "WARNING", "PROCESSOR_LATENCY_MS": str(PROCESSOR_MS),
        "FLEX_ENABLED": "1" if flex_enabled else "0",
        "FLEX_API_URL": f"{sandbox_url}/v1",
        "FLEX_APP_KEY": flex_sandbox.DEFAULT_APP_KEY,
        "FLEX_APP_SECRET": flex_sandbox.DEFAULT_APP_SECRET,
        "FLEX_MID": flex_sandbox.DEFAULT_MID, "FLEX_SITE_ID": flex_sandbox.DEFAULT_SITE_ID,
        "FLEX_TOKENIZATION_KEY": flex_sandbox.DEFAULT_TOKENIZATION_KEY,
        "FLEX_SENSEJS_URL": f"{sandbox_url}/widget.js",
        "FLEX_RELAY": "1" if relay_in_web else "0",
    }


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of one process (all its threads), from /proc/<pid>/stat; with
    `children`, that of its children that have ended (and were waited for) instead."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    first = 13 if children else 11  # cutime, cstime or utime, stime
    return (int(fields[first]) + int(fields[first + 1])) / TICKS_PER_SECOND


def children(pid: int) -> list[int]:
    """The ids of `pid`'s child processes (e.g. a gunicorn master's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found
