"""A throw-away PostgreSQL server on 127.0.0.1 for tests (Debian's `postgresql`).

Installs the Debian package when no server binaries exist (``apt-get update`` once, then
``apt-get install postgresql``), runs ``initdb`` into a fresh temporary directory and starts
``postgres`` on a free loopback port with durability off (fast). Postgres refuses to run as root, so
as root it runs as the ``postgres`` system user. :meth:`PostgresServer.stop` ends it by pid and
removes its files; :meth:`PostgresServer.restart` stops and starts the same server (same data, same
port), as an outage of the database under a running platform.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def ensure_installed() -> Path:
    """The directory of the server binaries, installing Debian's postgresql if needed."""
    bindir = _bindir()
    if bindir is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
            check=True,
            env=env,
            capture_output=True,
        )
        bindir = _bindir()
    if bindir is None:
        raise RuntimeError("postgresql server binaries not found after installing the package")
    return bindir


def _server_user() -> str | None:
    """The user to run postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return "postgres"


@dataclass
class PostgresServer:
    proc: subprocess.Popen
    base: Path
    port: int
    database: str
    bindir: Path | None = None
    user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://lorag@127.0.0.1:{self.port}/{self.database}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop_server(self) -> None:
        """End the server process (fast shutdown, by pid); its data stays for :meth:`start_server`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def start_server(self) -> None:
        """Start the server again on its data directory and port; returns once it accepts connections."""
        if self.proc.poll() is None:
            return
        assert self.bindir is not None
        self.proc = _spawn(self.bindir, self.base, self.port, self.user)
        _wait_ready(self, "postgres")

    def restart(self) -> None:
        self.stop_server()
        self.start_server()

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.base, ignore_errors=True)


def _spawn(bindir: Path, base: Path, port: int, user: str | None) -> subprocess.Popen:
    run_as = {"user": user, "group": user} if user else {}
    log = open(base / "postgres.log", "ab")  # noqa: SIM115 - owned by the server's lifetime
    proc = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D", str(base / "data"),
            "-h", "127.0.0.1",
            "-p", str(port),
            "-k", str(base),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=100",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        **run_as,
    )  # fmt: skip
    log.close()
    return proc


def _wait_ready(server: PostgresServer, database: str, *, create: str = "") -> None:
    """Wait until ``database`` accepts connections (creating ``create`` once it does)."""
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(
                f"postgresql://lorag@127.0.0.1:{server.port}/{database}", autocommit=True, connect_timeout=5
            ) as conn:
                if create:
                    conn.execute(f'CREATE DATABASE "{create}"')
            return
        except psycopg.OperationalError:
            if server.proc.poll() is not None or time.monotonic() > deadline:
                output = (server.base / "postgres.log").read_text(errors="replace")[-2000:]
                server.stop()
                raise RuntimeError(f"postgres did not start:\n{output}") from None
            time.sleep(0.1)


def start_postgres(database: str = "lorag_test") -> PostgresServer:
    bindir = ensure_installed()
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="lorag-pg-"))
    data = base / "data"
    if user:
        shutil.chown(base, user, user)
    run_as = {"user": user, "group": user} if user else {}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "lorag", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        **run_as,
    )
    port = _free_port()
    server = PostgresServer(_spawn(bindir, base, port, user), base, port, database, bindir, user)
    _wait_ready(server, "postgres", create=database)
    return server
