"""The settings read external servers' URLs as operators write them, and keep the secret key
file private from its first instant.

Each case imports ``studio.settings`` in a fresh interpreter with the environment an operator
would set, then hands what it parsed to the libraries that will use it (Celery's backend
lookup, redis-py's URL parser), so a URL they would misread fails here and not at run time.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings

# Prints what the settings made of the environment, as the libraries that use it read it.
REPORT = textwrap.dedent(
    """
    import json

    import redis.asyncio as aioredis
    from celery import Celery
    from celery.app.backends import by_url

    import studio.settings as s

    backend_class, backend_url = by_url(s.CELERY_RESULT_BACKEND)
    backend = backend_class(app=Celery(), url=backend_url).connparams
    address = s.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]["address"]
    channels = aioredis.ConnectionPool.from_url(address)
    keys = ("host", "port", "db", "password", "path", "ssl_cert_reqs")
    print(json.dumps({
        "database": {k: s.DATABASES["default"].get(k) for k in ("HOST", "PORT", "NAME", "USER",
                                                                 "PASSWORD", "OPTIONS")},
        "broker": s.CELERY_BROKER_URL,
        "backend": {k: backend.get(k) for k in keys},
        "channels_class": channels.connection_class.__name__,
        "channels": {k: channels.connection_kwargs.get(k) for k in keys},
    }, default=str))
    """
)


def _settings_with(tmp_path: Path, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", REPORT],
        cwd=settings.BASE_DIR,
        env={**os.environ, "STUDIO_VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 50, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgres://studio:pw@db.internal:5432/studio"
# Each process borrows connections from a pool that grows up to STUDIO_DB_POOL_MAX.
POOL = {"min_size": 1, "max_size": 100}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # The URL the README documents, without a query: it stopped the import with KeyError.
        (
            "postgres://user:pw@db.internal:5432/studio",
            {"HOST": "db.internal", "PORT": 5432, "NAME": "studio", "USER": "user"}
            | {
                "PASSWORD": "pw",
                "OPTIONS": {"pool": POOL},
            },
        ),
        (
            "postgresql://user:pw@/studio?host=/run/postgresql",
            {"HOST": "/run/postgresql", "PORT": "", "NAME": "studio", "OPTIONS": {"pool": POOL}},
        ),
        (
            "postgres://user:pw@db.internal:6432/studio?sslmode=verify-full&connect_timeout=5",
            {
                "HOST": "db.internal",
                "PORT": 6432,
                "OPTIONS": {"sslmode": "verify-full", "connect_timeout": 5, "pool": POOL},
            },
        ),
    ],
    ids=["tcp", "socket", "options"],
)
def test_settings_accept_postgres_urls(tmp_path, url, expected):
    database = _settings_with(tmp_path, DATABASE_URL=url, REDIS_URL=REDIS)["database"]
    assert {key: database[key] for key in expected} == expected


def test_a_pool_of_zero_connects_per_request_or_task(tmp_path):
    database = _settings_with(
        tmp_path, DATABASE_URL=POSTGRES, REDIS_URL=REDIS, STUDIO_DB_POOL_MAX="0"
    )["database"]
    assert database["OPTIONS"] == {}


def test_settings_accept_a_redis_url_with_password_and_database(tmp_path):
    url = "redis://:s3cret@cache.internal:6380/3"
    parsed = _settings_with(tmp_path, DATABASE_URL=POSTGRES, REDIS_URL=url)
    assert parsed["broker"] == url
    target = {"host": "cache.internal", "port": 6380, "db": 3, "password": "s3cret"}
    assert {k: parsed["backend"][k] for k in target} == target
    assert {k: parsed["channels"][k] for k in target} == target
    assert parsed["channels_class"] == "Connection"


def test_a_rediss_url_checks_the_servers_certificate(tmp_path):
    """Celery refused ``rediss://`` without ``ssl_cert_reqs`` (and kombu's broker then did not
    check the certificate at all): the studio asks for the check unless the URL says otherwise."""
    url = "rediss://studio:s3cret@cache.internal:6380/1"
    parsed = _settings_with(tmp_path, DATABASE_URL=POSTGRES, REDIS_URL=url)
    assert parsed["broker"] == url + "?ssl_cert_reqs=required"
    assert parsed["backend"]["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert parsed["backend"]["db"] == 1
    assert parsed["channels_class"] == "SSLConnection"
    assert parsed["channels"]["host"] == "cache.internal"

    relaxed = f"{url}?ssl_cert_reqs=none"
    parsed = _settings_with(tmp_path, DATABASE_URL=POSTGRES, REDIS_URL=relaxed)
    assert parsed["backend"]["ssl_cert_reqs"] == ssl.CERT_NONE


def test_a_redis_unix_socket_url_reaches_celery_and_channels(tmp_path):
    url = "unix:///run/redis/redis.sock?db=2"
    parsed = _settings_with(tmp_path, DATABASE_URL=POSTGRES, REDIS_URL=url)
    assert parsed["broker"] == "redis+socket:///run/redis/redis.sock?virtual_host=2"
    assert parsed["backend"]["path"] == "/run/redis/redis.sock"
    assert parsed["backend"]["db"] == 2
    assert parsed["channels_class"] == "UnixDomainSocketConnection"
    assert parsed["channels"]["path"] == "/run/redis/redis.sock"
    assert parsed["channels"]["db"] == 2


# --- the secret key file --------------------------------------------------------------------

# Runs the first start of the settings with umask 0 (anything created readable by others would
# show) and records the mode of every key file the moment the process does anything after it
# appears. With BARRIER set, every process waits, as it is about to create a key file, until
# all have come that far: the worst interleaving of simultaneous first starts, every time.
FIRST_START = textwrap.dedent(
    """
    import json, os, stat, sys, time
    from pathlib import Path

    var = Path(os.environ["STUDIO_VAR_DIR"])
    barrier = os.environ.get("BARRIER")
    modes = {}
    inside = []  # what the hook does raises events too: do not recurse

    def creates_key_file(event, args):
        return (
            event == "open"
            and "secret_key" in Path(str(args[0])).name
            and bool(args[2] & os.O_CREAT)
        )

    def watch(event, args):
        if inside:
            return
        inside.append(event)
        try:
            if barrier and creates_key_file(event, args):
                os.close(os.open(Path(barrier) / str(os.getpid()), os.O_CREAT | os.O_WRONLY))
                while len(os.listdir(barrier)) < int(os.environ["PROCESSES"]):
                    time.sleep(0.01)
            if var.is_dir():
                for entry in os.scandir(var):
                    if "secret_key" in entry.name and entry.name not in modes:
                        modes[entry.name] = stat.S_IMODE(entry.stat().st_mode)
        finally:
            inside.clear()

    sys.addaudithook(watch)
    os.umask(0)
    import studio.settings as s
    print(json.dumps({"key": s.SECRET_KEY, "modes": modes}))
    """
)


def _first_starts(var: Path, processes: int, barrier: Path | None = None) -> list[dict]:
    env = {
        **os.environ,
        "STUDIO_VAR_DIR": str(var),
        "PROCESSES": str(processes),
        # Named servers (never reached: importing the settings connects to nothing), so that
        # no first start launches an embedded PostgreSQL or Redis that would outlive the test.
        "DATABASE_URL": "postgres://studio:pw@127.0.0.1:9/studio",
        "REDIS_URL": "redis://127.0.0.1:9/0",
    }
    env.pop("SECRET_KEY", None)
    if barrier is not None:
        env["BARRIER"] = str(barrier)
    started = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_START],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    reports = []
    for process in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        reports.append(json.loads(out.splitlines()[-1]))
    return reports


def test_the_secret_key_file_is_never_readable_by_others(tmp_path):
    (report,) = _first_starts(tmp_path / "var", processes=1)
    assert report["modes"], "the first start made no key file"
    assert all(mode == 0o600 for mode in report["modes"].values()), report["modes"]
    assert (tmp_path / "var" / "secret_key").read_text().strip() == report["key"]
    assert sorted(p.name for p in (tmp_path / "var").iterdir() if "secret" in p.name) == [
        "secret_key"
    ]


def test_simultaneous_first_starts_agree_on_the_key(tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    reports = _first_starts(tmp_path / "var", processes=3, barrier=barrier)
    assert len({report["key"] for report in reports}) == 1
    assert (tmp_path / "var" / "secret_key").read_text().strip() == reports[0]["key"]
    # A later start reads the same key.
    (later,) = _first_starts(tmp_path / "var", processes=1)
    assert later["key"] == reports[0]["key"]
