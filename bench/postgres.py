"""A throwaway PostgreSQL server, for the bench's production layout and the test suites
(tests import it from here: the bench imports nothing from the tests)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def postgres_bindir() -> Path | None:
    """The directory of PostgreSQL's server binaries (initdb, pg_ctl), if installed."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(found.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")  # Debian keeps initdb off the PATH
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    return next((d for d in candidates if (d / "initdb").exists()), None)


class PostgresCluster:
    """A throwaway PostgreSQL server: initdb in a temp dir, listening only on a unix socket
    there, run as an unprivileged user when the tests run as root (initdb refuses root).
    Durability settings are off: a test cluster is never recovered, only discarded."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
        self.data = self.root / "data"
        self.user = self._run_as()

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        account = next(a for a in ("postgres", "nobody") if _has_user(a))
        entry = pwd.getpwnam(account)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True,
                              cwd=self.root, **self.user)
        if done.returncode:
            server_log = self.root / "log"
            raise RuntimeError(f"{tool} failed: {done.stderr}"
                               f"{server_log.read_text() if server_log.exists() else ''}")

    def start(self) -> PostgresCluster:
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-sync", "--no-instructions")
        self.resume()
        self._admin("CREATE DATABASE shop", database="postgres")
        return self

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`, as an operator would: every connection is closed, and
        the server is back when this returns."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-l", str(self.root / "log"),
                 "-w", "restart")

    def pause(self) -> None:
        """Stops the server (fast) without removing it; `resume()` starts it again."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        options = (f"-k {self.root} -c listen_addresses='' -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                 "-w", "start")

    def url(self, schema: str = "public") -> str:
        """The URL of the database `shop`, with `schema` first on the search path."""
        return (f"postgresql://postgres@/shop?host={self.root}"
                f"&options=-csearch_path%3D{schema}")

    def create_schema(self) -> str:
        """A new empty schema (milliseconds, where CREATE DATABASE takes most of a second);
        returns the URL that uses it."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE SCHEMA {name}")
        return self.url(name)

    def drop_schema(self, url: str) -> None:
        self._admin(f"DROP SCHEMA IF EXISTS {url.rsplit('%3D', 1)[1]} CASCADE")

    def _admin(self, sql: str, database: str = "shop") -> None:
        import psycopg

        url = f"postgresql://postgres@/{database}?host={self.root}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
