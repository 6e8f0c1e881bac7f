"""Shared fixtures: real Redis, a real Celery worker and a real web server (daphne) against the
test database, the tiny and echo models, and the personas (owner, viewer, outsider).

Tests that need the worker or the server must use ``transactional_db`` (their rows are
committed so other processes see them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from studio import embedded, launch
from workers import queues

# The test process and its worker share these: short enough that failures show in seconds.
FAST_TIMINGS = {
    "STUDIO_HEARTBEAT_S": "0.5",
    "STUDIO_HEARTBEAT_STALE_S": "4",
    "STUDIO_REAP_INTERVAL_S": "1",
    "STUDIO_INGEST_STALE_S": "4",
}
PASSWORD = "correct-horse-battery-9"


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    """The embedded Redis (under the test var folder), unless REDIS_URL names one."""
    process = None if os.environ.get("REDIS_URL") else embedded.redis_start()
    yield settings.REDIS_URL
    launch.stop(process)


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashing():
    """Users are made with one PBKDF2 iteration (tests/hashers.py); the real hasher still reads
    them, so logging in through the web server works as it does for any user."""
    from django.test import override_settings

    with override_settings(
        PASSWORD_HASHERS=["tests.hashers.OneIterationPBKDF2", *settings.PASSWORD_HASHERS]
    ):
        yield


@pytest.fixture(scope="session", autouse=True)
def fast_timings():
    settings.STUDIO_HEARTBEAT_S = float(FAST_TIMINGS["STUDIO_HEARTBEAT_S"])
    settings.STUDIO_HEARTBEAT_STALE_S = float(FAST_TIMINGS["STUDIO_HEARTBEAT_STALE_S"])
    settings.STUDIO_INGEST_STALE_S = float(FAST_TIMINGS["STUDIO_INGEST_STALE_S"])


def _database_url() -> str:
    db = settings.DATABASES["default"]
    credentials = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else ":")
    if str(db["HOST"]).startswith("/"):
        return f"postgresql://{credentials}@/{db['NAME']}?host={db['HOST']}"
    return f"postgresql://{credentials}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def process_env(django_db_setup, redis_server) -> dict[str, str]:
    """The environment of processes that must use the test database and Redis."""
    return {
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "STUDIO_MODEL_DIR": str(settings.STUDIO_MODEL_DIR),
        **FAST_TIMINGS,
    }


class Worker:
    """A real Celery worker subprocess (all queues, a thread pool, beat for the reaper)."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"worker-{self.starts}.log"

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        command = launch.worker_command(
            queues.default_queues(),
            concurrency=4,
            name=f"test{self.starts}",
            schedule=self.folder / f"beat-{self.starts}",
        )
        # Its own process group: beat runs in a child process, and a kill must take both.
        self.process = launch.start(
            command, self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while " ready." not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        """SIGKILL to all its processes: no chance to clean up, as when a machine dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()

    def stop(self) -> None:
        launch.stop(self.process)


@pytest.fixture(scope="session")
def worker_process(process_env, tmp_path_factory):
    worker = Worker(process_env, tmp_path_factory.mktemp("worker"))
    worker.start()
    yield worker
    worker.stop()


def _wait_for_a_quiet_database(timeout: float = 10.0) -> None:
    """Wait until no other session (the worker, the web server) is inside a statement or a
    transaction on the test database, so that the flush after a test does not meet a task
    still finishing the test's last run (its TRUNCATE would deadlock with it)."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    quiet_polls = 0
    while time.monotonic() < deadline and quiet_polls < 3:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                " AND state IN ('active', 'idle in transaction')"
            )
            busy = cursor.fetchone()[0]
        quiet_polls = 0 if busy else quiet_polls + 1
        time.sleep(0.05)


def _flush_retrying(teardown):
    """TransactionTestCase's flush, tried again after the database is quiet: a periodic task
    (the reaper, a heartbeat) can still meet the flush's TRUNCATE in a deadlock, and a flush
    that fails leaves the next test the previous one's rows."""
    from django.core.management.base import CommandError

    def flush(self):
        for attempt in range(3):
            try:
                return teardown(self)
            except CommandError:
                if attempt == 2:
                    raise
                _wait_for_a_quiet_database()

    return flush


def _retry_flushes() -> None:
    from django.test import TransactionTestCase

    TransactionTestCase._fixture_teardown = _flush_retrying(TransactionTestCase._fixture_teardown)


_retry_flushes()


@pytest.fixture
def worker(worker_process, transactional_db):
    """The session's worker, restarted if a test killed it; the test's work is let finish
    before its rows are flushed."""
    worker_process.ensure_running()
    yield worker_process
    _wait_for_a_quiet_database()


@pytest.fixture(scope="session")
def studio_server(process_env, tmp_path_factory):
    """A real daphne serving the studio on a free port; its base URL."""
    port = launch.free_port()
    log = open(tmp_path_factory.mktemp("web") / "web.log", "w")  # noqa: SIM115
    process = launch.start(
        launch.web_command(port), process_env, stdout=log, stderr=subprocess.STDOUT
    )
    launch.wait_for_port(port, process=process)
    yield f"http://127.0.0.1:{port}"
    launch.stop(process)


@pytest.fixture(scope="module")
def worker_may_call_loopback(worker_process):
    """The session's worker, restarted with 127.0.0.1 allowed for both uses (the worker reads
    STUDIO_EGRESS_ALLOW_MODELS and STUDIO_EGRESS_ALLOW_FETCH from its environment) for a module
    whose tests fake a remote model or a site to fetch; stopped again afterwards, so that the
    ``worker`` fixture of later tests starts it with the studio's default, loopback refused."""
    names = ("STUDIO_EGRESS_ALLOW_MODELS", "STUDIO_EGRESS_ALLOW_FETCH")
    worker_process.stop()
    worker_process.env.update(dict.fromkeys(names, "127.0.0.1"))
    try:
        worker_process.start()
        yield worker_process
    finally:
        for name in names:
            worker_process.env.pop(name, None)
        worker_process.stop()


@pytest.fixture
def live_studio(studio_server, worker):
    """The web server and the worker, for tests that go through HTTP end to end."""
    return studio_server


# --- models ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def echo_model(db):
    from catalog.services import model_create

    return model_create(slug="echo", name="Echo", engine="echo")


@pytest.fixture
def slow_echo_model(db):
    from catalog.services import model_create

    return model_create(
        slug="slow-echo", name="Slow echo", engine="echo", settings={"delay_ms": 200}
    )


@pytest.fixture
def tiny_model(db, tiny_model_dir):
    from catalog.services import model_create

    return model_create(slug="tiny", name="Tiny Llama", engine="cpu", weights=str(tiny_model_dir))


@pytest.fixture(autouse=True)
def _fresh_role_cache():
    """Each process caches the role groups' permissions for a few seconds; a test that edits a
    group must not leak its edit into the next test."""
    from studio import roles

    roles._cache.clear()
    yield
    roles._cache.clear()


# --- personas -------------------------------------------------------------------------------


def _user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)


@pytest.fixture
def workspace(db):
    from workspaces.services import workspace_create

    return workspace_create(slug="acme", name="Acme")


@pytest.fixture
def owner(workspace):
    from workspaces.services import member_add

    user = _user("olive")
    member_add(workspace=workspace, user=user, role="owner")
    return user


@pytest.fixture
def viewer(workspace):
    from workspaces.services import member_add

    user = _user("victor")
    member_add(workspace=workspace, user=user, role="viewer")
    return user


@pytest.fixture
def make_member(workspace):
    """A new user with ``role`` in the workspace (``limited``: only what is shared with them)."""
    from workspaces.services import member_add

    def make(role: str, username: str | None = None, limited: bool = False):
        user = _user(username or f"{role}-{'limited' if limited else 'full'}")
        member_add(workspace=workspace, user=user, role=role, limited=limited)
        return user

    return make


@pytest.fixture
def outsider(db):
    """A member of another workspace."""
    from workspaces.services import member_add, workspace_create

    user = _user("oscar")
    member_add(workspace=workspace_create(slug="other", name="Other"), user=user, role="owner")
    return user


@pytest.fixture
def make_flow(workspace, owner):
    """Create and publish a flow input → llm → output on a model."""
    from flows.demo import assistant_graph
    from flows.services import flow_create, flow_publish

    def make(model, slug: str = "assistant", max_tokens: int = 64, publish: bool = True):
        flow = flow_create(
            workspace=workspace,
            slug=slug,
            name=slug.title(),
            graph=assistant_graph(model=model.slug, max_tokens=max_tokens),
            user=owner,
        )
        return flow_publish(flow=flow, user=owner) if publish else flow

    return make


@pytest.fixture
def api_key(workspace) -> str:
    from workspaces.services import api_key_create

    return api_key_create(workspace=workspace, name="tests")[1]


# --- embedding and rerank models ------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture
def embedding_model(db):
    """The shared catalog entry of the bundled MiniLM embedder."""
    from catalog.services.models import embedding_model_default

    return embedding_model_default()


@pytest.fixture
def tiny_reranker(db, tiny_reranker_dir):
    from catalog.services import model_create

    return model_create(
        slug="tiny-rerank",
        name="Tiny reranker",
        task="rerank",
        engine="sentence_transformers",
        weights=str(tiny_reranker_dir),
    )
