"""One sandbox process per directory, shared by every process of the shop that uses it.

Each web worker (`gunicorn -w 4`), the `flask` CLI and the relay must talk to the SAME
sandbox: a card vaulted through one worker is refunded through another. So the sandbox runs
as its own process, found through three files in the directory (POSIX `flock`s, which the
kernel releases when a process dies, even by `kill -9`):

- `flex-sandbox.lock`: held exclusively while a process looks for the sandbox or starts it,
  so two workers booting together start one sandbox, not two.
- `flex-sandbox.url`: the sandbox's URL, locked by the sandbox for as long as it runs, and
  removed when it stops. A URL file nobody holds is left over from a process that was killed,
  and is replaced.
- `flex-sandbox.users`: every process using the sandbox holds a shared lock on it for its
  life. The sandbox exits once that file has had no holder for a grace period, which spans
  a worker restart but not the end of `make demo`.

`supervise()` restarts the sandbox if it dies while in use (kill -9, a crash): a thread
waits on the URL file's lock, so it wakes the moment the sandbox's process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from .server import SandboxServer

START_LOCK = "flex-sandbox.lock"
URL_FILE = "flex-sandbox.url"
USERS_FILE = "flex-sandbox.users"
UNUSED_GRACE = 5.0  # seconds unused before the sandbox exits; a restarted worker is back sooner
START_TIMEOUT = 30.0  # seconds for a new sandbox process to report its URL
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # where `python -m flex_sandbox` imports from

log = logging.getLogger(__name__)


@dataclass
class SharedSandbox:
    """A process's membership of a directory's sandbox: it counts as a user while it lives."""

    url: str
    directory: Path
    _users: IO | None  # our shared lock on the users file
    process: subprocess.Popen | None = None  # the sandbox, if this process started it
    unused_grace: float = UNUSED_GRACE
    restarts: int = 0  # times this process's supervisor found it dead and restarted it
    on_restart: list[Callable[[str], None]] = field(default_factory=list)
    _supervisor: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    def leave(self) -> None:
        """Stops counting this process as a user (exiting does that too)."""
        with _joined_lock:
            _joined.pop(self.directory, None)
            if self._users:
                self._users.close()
                self._users = None


_joined: dict[Path, SharedSandbox] = {}
_joined_lock = threading.Lock()


def join(directory: str | Path, port: int = 0, unused_grace: float = UNUSED_GRACE
         ) -> SharedSandbox:
    """The sandbox process for `directory`, started on loopback `port` (0: any free port) if
    none is running; it exits `unused_grace` seconds after its last user. This process counts
    as a user until it exits or calls `leave()`."""
    directory = Path(directory).resolve()
    with _joined_lock:
        if directory in _joined:
            return _joined[directory]
        directory.mkdir(parents=True, exist_ok=True)
        users = open(directory / USERS_FILE, "a")  # noqa: SIM115 - held for the process's life
        try:
            # Blocks only while an unused sandbox is shutting down: then we start a new one.
            fcntl.flock(users, fcntl.LOCK_SH)
            with open(directory / START_LOCK, "a") as start_lock:
                fcntl.flock(start_lock, fcntl.LOCK_EX)  # released when the file closes
                url, process = running_url(directory), None
                if url is None:
                    url, process = _start(directory, port, unused_grace)
        except BaseException:
            users.close()
            raise
        if port and not url.endswith(f":{port}"):
            log.warning("Flex sandbox for %s already runs at %s, not on port %d", directory,
                        url, port)
        _joined[directory] = SharedSandbox(url, directory, users, process, unused_grace)
        return _joined[directory]


def running_url(directory: str | Path) -> str | None:
    """The URL of the sandbox process running for `directory`, or None if there is none."""
    try:
        published = open(Path(directory) / URL_FILE)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with published:
        try:
            fcntl.flock(published, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # the sandbox holds it: it is running
            return published.read().strip() or None
        return None  # nobody holds it: written by a sandbox that is gone


def _start(directory: Path, port: int, unused_grace: float) -> tuple[str, subprocess.Popen]:
    command = [
        sys.executable, "-m", "flex_sandbox", "--port", str(port),
        "--url-file", str(directory / URL_FILE),
        "--exit-when-unused", str(directory / USERS_FILE), "--unused-grace", str(unused_grace),
    ]
    # Its own session: Ctrl-C in the terminal stops the shop, and the sandbox follows when its
    # last user is gone, rather than dying under shop processes that still use it.
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        command, cwd=PACKAGE_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        start_new_session=True)
    with process.stdout:
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("http://"):
        process.kill()
        raise RuntimeError(f"The Flex sandbox process did not start (exit code "
                           f"{process.wait()}); its error, if any, is above.")
    return line, process


def serve_shared(host: str, port: int, url_file: str, users_file: str | None,
                 unused_grace: float | None = None) -> int:
    """Runs the sandbox as a shared process (`python -m flex_sandbox --url-file …`): publishes
    its URL in `url_file`, and with `users_file` exits once no process has held a shared lock
    on it for `unused_grace` seconds (default UNUSED_GRACE). Returns the exit status."""
    published = open(url_file, "a")  # noqa: SIM115 - locked for the process's life
    try:
        fcntl.flock(published, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"Another Flex sandbox is running for {url_file}", file=sys.stderr)
        return 1
    try:
        server = SandboxServer(host, port)
    except OSError as exc:
        print(f"The Flex sandbox cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    published.truncate(0)
    published.write(f"{server.url}\n")
    published.flush()
    print(server.url, flush=True)
    # The process that started us read that line and closed its pipe: nothing more goes there.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    users = None
    try:
        if users_file:
            users = _wait_until_unused(users_file, UNUSED_GRACE if unused_grace is None
                                       else unused_grace)
        else:
            threading.Event().wait()  # until a signal ends the process
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        # A clean stop leaves no URL behind (the file names a sandbox only while it runs); we
        # still hold its lock, so no other sandbox can have written it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(url_file)
        published.close()  # first: a process let in below must find no sandbox running
        if users:
            users.close()
    return 0


def _wait_until_unused(users_file: str, grace: float) -> IO:
    """Returns once the users file has no holder, and still none `grace` seconds later; with
    it locked exclusively, so that no process joins the sandbox while it shuts down."""
    users = open(users_file, "a")  # noqa: SIM115 - returned locked
    while True:
        fcntl.flock(users, fcntl.LOCK_EX)  # waits until the last user has gone
        fcntl.flock(users, fcntl.LOCK_UN)  # let a restarting worker back in during the grace
        time.sleep(grace)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return users
        except BlockingIOError:  # someone joined during the grace period
            continue


RESTART_PAUSE = 0.2  # seconds before trying again when a restart failed


def supervise(sandbox: SharedSandbox) -> None:
    """Keeps `sandbox` running while this process uses it: a daemon thread blocks on a shared
    lock of the URL file, which the sandbox holds exclusively for its whole life, so the lock
    is granted the moment the sandbox dies. The thread then starts a new one on the same port
    (every URL this process handed out stays right; the URL file is rewritten), unless another
    process of the shop already did, and calls each of `sandbox.on_restart` with the URL. The
    new sandbox starts empty: tokens and orders of the old one are gone (a demo)."""
    with _joined_lock:
        if sandbox._supervisor is not None:
            return
        sandbox._supervisor = threading.Thread(target=_watch, args=(sandbox,), daemon=True,
                                               name="flex-sandbox-supervisor")
    sandbox._supervisor.start()


def _watch(sandbox: SharedSandbox) -> None:
    port = urlsplit(sandbox.url).port or 0
    while sandbox._users is not None:
        with open(sandbox.directory / URL_FILE, "a") as published:
            fcntl.flock(published, fcntl.LOCK_SH)  # blocks while the sandbox runs
        if sandbox._users is None:  # we left: nothing to keep running
            return
        if sandbox.process is not None:
            sandbox.process.poll()  # reap it, if it was ours
        try:
            with open(sandbox.directory / START_LOCK, "a") as start_lock:
                fcntl.flock(start_lock, fcntl.LOCK_EX)
                if running_url(sandbox.directory) is None:
                    url, sandbox.process = _start(sandbox.directory, port, sandbox.unused_grace)
                    sandbox.restarts += 1
                    log.warning("the Flex sandbox for %s had stopped; restarted at %s",
                                sandbox.directory, url)
        except (OSError, RuntimeError) as exc:
            log.warning("could not restart the Flex sandbox for %s: %s", sandbox.directory, exc)
            time.sleep(RESTART_PAUSE)
            continue
        for hook in sandbox.on_restart:
            hook(sandbox.url)
