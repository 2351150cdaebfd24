"""A managed ``milvus-lite server`` subprocess on 127.0.0.1, shared by the processes of one host.

Milvus Lite opened as a file is locked to one process. To let several retrieval replicas (or
other tools) use the same data, one ``milvus-lite server`` serves the data directory over gRPC
on loopback and every process connects to it by URI.

:class:`LiteServer` starts and stops one server (used by tests and tools). :class:`SharedLiteServer`
coordinates processes through a lock file beside the data: the first process starts the server
and records its pid and port; the others find it there and register as users; when the last
registered user releases it (explicitly, or at interpreter exit), the server is stopped (by its
recorded pid, after checking that the pid still runs ``milvus_lite``). A server left behind by
processes that were all killed is reused by the next one; a server that died while in use is
started again (same port, same data) by the first user whose call failed (:meth:`revive`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("lorag.retrieval.lite_server")

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_milvus_lite(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) milvus-lite server process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"milvus_lite" in cmdline and b"server" in cmdline


class LiteServer:
    """One ``milvus-lite server`` child process serving ``data_dir`` on 127.0.0.1:``port``."""

    def __init__(self, data_dir: Path, *, port: int = 0, log_path: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.log_path = log_path or self.data_dir.parent / f"{self.data_dir.name}.server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = START_TIMEOUT_S) -> LiteServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            HOST,
            "--port",
            str(self.port),
        ]
        with open(self.log_path, "ab") as out:
            # its own session: a Ctrl-C meant for the parent does not kill it mid-write
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"milvus-lite server exited with {self.proc.returncode}; see {self.log_path}"
                )
            if port_open(self.port):
                log.info("milvus-lite server pid %d serving %s on %s", self.proc.pid, self.data_dir, self.uri)
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"milvus-lite server did not start within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        _terminate(self.proc.pid, timeout=timeout, proc=self.proc)
        self.proc = None

    def __enter__(self) -> LiteServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _terminate(pid: int, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM, wait, then SIGKILL one process we started (never a process group or a name)."""
    if proc is None and not _is_milvus_lite(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not _is_milvus_lite(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


class SharedLiteServer:
    """Reference-counted use of one managed server per data directory (see the module docstring)."""

    def __init__(self, data_dir: Path, *, port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.state_dir = self.data_dir.parent / f"{self.data_dir.name}.server"
        self._server: LiteServer | None = None  # set when this process started it
        self._uri: str | None = None

    @contextlib.contextmanager
    def _locked(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _state(self) -> dict | None:
        try:
            return json.loads((self.state_dir / "server.json").read_text())
        except (OSError, ValueError):
            return None

    def _users(self) -> list[int]:
        users = []
        for f in (self.state_dir / "users").glob("*"):
            if f.name.isdigit():
                pid = int(f.name)
                if Path(f"/proc/{pid}").exists():
                    users.append(pid)
                else:
                    f.unlink(missing_ok=True)
        return users

    def acquire(self) -> str:
        """The server's URI, starting the server when none is running."""
        if self._uri:
            return self._uri
        with self._locked():
            state = self._state()
            if not (state and _is_milvus_lite(state["pid"]) and port_open(state["port"])):
                server = LiteServer(
                    self.data_dir, port=self.port, log_path=self.state_dir / "server.log"
                ).start()
                state = {"pid": server.pid, "port": server.port}
                (self.state_dir / "server.json").write_text(json.dumps(state))
                self._server = server
            (self.state_dir / "users").mkdir(exist_ok=True)
            (self.state_dir / "users" / str(os.getpid())).touch()
            self._uri = f"http://{HOST}:{state['port']}"
        atexit.register(self.release)  # a process that exits without closing still unregisters
        return self._uri

    def revive(self) -> bool:
        """Start the server again, on its port and data, if it died while this process used it.

        Called after a failed Milvus call: a killed or crashed server would otherwise stay down
        until every user process restarted. Returns whether a new server was started (by this
        process; another user may have done it first).
        """
        if not self._uri:
            return False
        with self._locked():
            state = self._state()
            if state and _is_milvus_lite(state["pid"]) and port_open(state["port"]):
                return False
            if self._server is not None and self._server.proc is not None:
                self._server.proc.poll()  # reap the dead child
            port = int(self._uri.rsplit(":", 1)[1])
            server = LiteServer(self.data_dir, port=port, log_path=self.state_dir / "server.log").start()
            (self.state_dir / "server.json").write_text(json.dumps({"pid": server.pid, "port": server.port}))
            self._server = server
        log.warning("milvus-lite server of %s was down; started it again (pid %d)", self.data_dir, server.pid)
        return True

    def release(self) -> None:
        """Unregister; the last user stops the server."""
        if not self._uri:
            return
        with self._locked():
            (self.state_dir / "users" / str(os.getpid())).unlink(missing_ok=True)
            state = self._state()
            if not self._users() and state:
                if self._server is not None and self._server.pid == state["pid"]:
                    self._server.stop()
                else:
                    _terminate(int(state["pid"]), timeout=15.0)
                (self.state_dir / "server.json").unlink(missing_ok=True)
            elif self._server is not None:
                self._server.proc = None  # others still use it; the last user stops it by pid
        self._uri = None
        self._server = None
        atexit.unregister(self.release)
