"""The studio as a fleet on loopback: PostgreSQL, Redis and S3 (moto) as TCP servers, two web
processes, three worker pools on different queues and beat, each with its own empty var folder,
so that a file one process writes and another reads fails a test here."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from studio import launch
from tests.conftest import FAST_TIMINGS
from tests.deploy import servers
from tests.deploy.fleet_seed import PASSWORD
from tests.knowledge.helpers import PARAGRAPHS
from tests.s3 import s3_client
from workers import queues

# The knowledge test's paragraphs; the retrieval query below must find the Eiffel one.
HANDBOOK = "\n\n".join(PARAGRAPHS)
ALPHABET = "a b c d e f g h i j k l m n o p q r s t u v w x y z"
# What a process may keep in its own var folder: caches nobody else reads.
# (Celery's beat schedule is a shelve: .db, or .dat/.dir/.bak, by the dbm module at hand.)
PER_PROCESS_FILES = "celerybeat-schedule"
BUCKET = "studio-fleet"


@dataclass
class Process:
    """One process of the fleet: its command, environment, var folder and log."""

    name: str
    command: list[str]
    env: dict[str, str]
    var: Path
    logs: Path
    ready: str = ""  # a line its log prints once it serves; empty: wait for ``port``
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.logs / f"{self.name}.log"

    def start(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        # Its own process group: a kill must take whatever children it has (beat's, a pool's).
        self.process = launch.start(
            self.command,
            {
                **self.env,
                "STUDIO_VAR_DIR": str(self.var),
                "STUDIO_MEDIA_ROOT": str(self.var / "media"),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 180) -> None:
        assert self.process is not None
        if self.port:
            launch.wait_for_port(self.port, timeout=timeout, process=self.process)
            return
        deadline = time.monotonic() + timeout
        while self.ready not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to its whole group: no chance to clean up, as when a machine dies."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self, timeout: float = 15) -> None:
        """Its exit after ``terminate``; a kill of its group when it lingers."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Fleet:
    env: dict[str, str]
    root: Path
    api_key: str = ""
    other_key: str = ""  # a key of another workspace
    note: int = 0  # the seeded document of the notes base
    viewer_membership: int = 0
    processes: dict[str, Process] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.processes[name].port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def add(self, name: str, command: list[str], **kwargs) -> Process:
        process = Process(name, command, self.env, self.root / "var" / name, self.root, **kwargs)
        self.processes[name] = process
        return process

    def web(self, name: str) -> Process:
        port = launch.free_port()
        return self.add(name, launch.web_command(port), port=port)

    def worker(self, name: str, queue_names: list[str]) -> Process:
        """A worker as a fleet runs one: ``manage.py worker`` for some queues, no beat."""
        command = [*MANAGE, "worker", "--queues", ",".join(queue_names), "--concurrency", "4"]
        return self.add(name, [*command, "--name", name], ready=" ready.")

    def stop(self) -> None:
        """All its processes at once: each takes seconds to shut down."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait_stopped()

    def warm(self, web: str) -> None:
        """A web process's first request loads the whole site. Through web2, the embedder is
        loaded on the inference worker (``/v1/embeddings``) while the ingestion worker loads
        its own for the seeded note, which is waited for."""
        if web == "web1":
            url = f"{self.url(web)}/api/v1/knowledge/notes/documents"
            assert httpx.get(url, headers=self.auth, timeout=120).status_code == 200
            return
        body = {"model": "all-minilm-l6-v2", "input": "welcome"}
        embedded = httpx.post(
            f"{self.url(web)}/v1/embeddings", json=body, headers=self.auth, timeout=180
        )
        assert embedded.status_code == 200, embedded.text
        assert wait_ingested(self, web, "notes", self.note)["status"] == "ready"


MANAGE = [launch.PYTHON, "manage.py"]
SETUP = "from tests.deploy.fleet_seed import main; main()"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Everything, started once for the module and stopped even when a start fails."""
    with ExitStack() as stack:
        yield _start_fleet(tmp_path_factory.mktemp("fleet"), stack)


def _start_fleet(root: Path, stack: ExitStack) -> Fleet:
    pgdata = Path(tempfile.mkdtemp(prefix="studio-fleet-pg-"))
    stack.callback(shutil.rmtree, pgdata, ignore_errors=True)
    postgres, database_url = servers.postgres_serve(
        pgdata, root / "postgres.log", launch.free_port(), "studio"
    )
    stack.callback(servers.postgres_stop, postgres)
    redis, redis_url = servers.redis_serve(root / "redis", launch.free_port())
    stack.callback(launch.stop, redis)
    s3_port = launch.free_port()
    stack.callback(launch.stop, servers.s3_serve(root, s3_port))
    s3 = {
        "STUDIO_S3_BUCKET": BUCKET,
        "STUDIO_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "STUDIO_S3_REGION": "us-east-1",
        "STUDIO_S3_ADDRESSING_STYLE": "path",
        "STUDIO_S3_ACCESS_KEY_ID": "fleet",
        "STUDIO_S3_SECRET_ACCESS_KEY": "fleet-secret",
    }
    s3_client(s3).create_bucket(Bucket=BUCKET)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "fleet-test-secret-key-" + "x" * 40,
        "STUDIO_MODEL_DIR": str(settings.STUDIO_MODEL_DIR),
        **s3,
        **FAST_TIMINGS,
    }
    fleet = Fleet(env, root)
    stack.callback(fleet.stop)
    setup = fleet.add("setup", [*MANAGE, "shell", "-c", SETUP])
    # The web processes and the workers touch the database only when a request or a task asks:
    # they start while the database is migrated. Beat, which sends the reapers' tasks every
    # second, waits for the tables.
    early = [
        fleet.web("web1"),
        fleet.web("web2"),
        # The executor: it sends engine nodes to the inference queue, on another worker.
        fleet.worker("flows", [queues.FLOWS, queues.MAINTENANCE]),
        fleet.worker("ingest", [queues.INGESTION]),
        fleet.worker("serve", [queues.INFERENCE, queues.RETRIEVAL]),
    ]
    for process in (setup, *early):
        process.start()
    assert setup.process is not None
    if setup.process.wait(300) != 0:
        raise RuntimeError(f"the setup failed:\n{setup.log()[-3000:]}")
    seeded = json.loads(setup.log().strip().splitlines()[-1])
    fleet.api_key, fleet.other_key, fleet.note = (
        seeded["api_key"],
        seeded["other_key"],
        seeded["note"],
    )
    fleet.viewer_membership = seeded["viewer_membership"]
    # Once across the fleet: the reapers (of runs whose worker died) among its tasks.
    beat = fleet.add("beat", [*MANAGE, "beat"], ready="holding the beat lock")
    beat.start()
    for process in early:
        process.wait_ready()
    with ThreadPoolExecutor() as pool:
        list(pool.map(fleet.warm, ["web1", "web2"]))
    beat.wait_ready()
    return fleet


def wait_ingested(fleet: Fleet, web: str, base: str, document_id: int) -> dict:
    """The document, read through ``web``, once it is ready or failed."""
    url = f"{fleet.url(web)}/api/v1/knowledge/{base}/documents/{document_id}"
    deadline = time.monotonic() + 120
    while True:
        detail = httpx.get(url, headers=fleet.auth, timeout=30).json()
        if detail["status"] in ("ready", "failed") or time.monotonic() > deadline:
            return detail
        time.sleep(0.3)


def _first_event(response: httpx.Response, type_: str) -> dict:
    for line in response.iter_lines():
        if line.startswith("data: ") and (event := json.loads(line[6:]))["type"] == type_:
            return event
    raise AssertionError(f"the stream ended without a {type_} event")


def _start_run(fleet: Fleet, web: str, slug: str, message: str, until: str) -> dict:
    """Start a run on ``web`` streaming, and leave its stream at the first ``until`` event."""
    with httpx.stream(
        "POST",
        f"{fleet.url(web)}/api/v1/flows/{slug}/runs",
        json={"inputs": {"message": message}, "stream": True},
        headers=fleet.auth,
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        return _first_event(response, until)


def _follow(fleet: Fleet, web: str, run_id: str, timeout: float = 90) -> list[dict]:
    """The run's events from its first, through ``web``, until the stream ends."""
    response = httpx.get(
        f"{fleet.url(web)}/api/v1/runs/{run_id}/events", headers=fleet.auth, timeout=timeout
    )
    assert response.status_code == 200, response.text
    events = []
    for block in response.text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            events.append(json.loads(data[0]))
    return events


def _tasks(process: Process, name: str) -> int:
    """How many ``workers.tasks.<name>`` tasks the process's log says it received."""
    return len(re.findall(rf"Task workers\.tasks\.{name}\[[-0-9a-f]+\] received", process.log()))


def test_a_run_started_on_one_web_process_streams_through_the_other(fleet):
    started = _start_run(fleet, "web1", "assistant", "hello from web one", until="run.started")
    events = _follow(fleet, "web2", started["run"])
    assert [e["type"] for e in events][0] == "run.started"
    assert events[-1]["type"] == "run.finished"
    tokens = "".join(e["data"]["text"] for e in events if e["type"] == "token")
    assert tokens == "hello from web one"
    # Another workspace's key learns nothing of it, on either web process.
    for web in ("web1", "web2"):
        refused = httpx.get(
            f"{fleet.url(web)}/api/v1/runs/{started['run']}/events",
            headers={"Authorization": f"Bearer {fleet.other_key}"},
            timeout=30,
        )
        assert refused.status_code == 404 and "hello" not in refused.text
    # The executor ran on one worker, the model's node on another.
    workers = fleet.processes
    assert _tasks(workers["flows"], "advance_run") >= 1
    assert _tasks(workers["serve"], "execute_node") == 1
    assert _tasks(workers["flows"], "execute_node") == _tasks(workers["ingest"], "advance_run") == 0


def test_a_document_is_ingested_on_one_worker_and_retrieved_on_another(fleet):
    base = "/api/v1/knowledge/handbook"
    upload = httpx.post(
        f"{fleet.url('web1')}{base}/documents",
        files={"file": ("handbook.txt", HANDBOOK.encode(), "text/plain")},
        headers=fleet.auth,
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    document_id = upload.json()["id"]

    detail = wait_ingested(fleet, "web2", "handbook", document_id)
    assert detail["status"] == "ready", detail["error"]
    assert detail["chunk_count"] >= 1
    # The upload's bytes went to the bucket, where the ingestion worker read them.
    stored = s3_client(fleet.env).list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert "handbook.txt" in [o["Key"].rsplit("/", 1)[-1] for o in stored]
    workers = fleet.processes
    assert _tasks(workers["ingest"], "ingest_document") == 2  # with the seeded note
    assert (
        _tasks(workers["flows"], "ingest_document")
        == _tasks(workers["serve"], "ingest_document")
        == 0
    )

    retrieved = httpx.post(
        f"{fleet.url('web2')}{base}/retrieve",
        json={"query": "Eiffel Tower in Paris", "top_k": 2},
        headers=fleet.auth,
        timeout=60,
    )
    assert retrieved.status_code == 200, retrieved.text
    assert "Eiffel" in retrieved.json()["chunks"][0]["text"]
    assert _tasks(workers["serve"], "knowledge_query") == 1
    outsider = httpx.post(
        f"{fleet.url('web1')}{base}/retrieve",
        json={"query": "Eiffel Tower in Paris"},
        headers={"Authorization": f"Bearer {fleet.other_key}"},
        timeout=60,
    )
    assert outsider.status_code == 404 and "Eiffel" not in outsider.text
    assert _tasks(workers["ingest"], "knowledge_query") == 0


def test_a_run_whose_worker_is_killed_is_finished_by_another(fleet):
    serve = fleet.processes["serve"]
    first_token = _start_run(fleet, "web1", "slow", ALPHABET, until="token")
    serve.kill()  # mid-node: the model was streaming its tokens

    # Another worker for the same queues, under another name: the reaper (sent by beat, run by
    # the flows worker) finds the node whose heartbeat stopped and sends it to the queue again.
    fleet.worker("serve2", [queues.INFERENCE, queues.RETRIEVAL]).start()
    fleet.processes["serve2"].wait_ready()
    events = _follow(fleet, "web2", first_token["run"])
    assert events[-1]["type"] == "run.finished", events[-1]
    retries = [(e["node"], e["data"]["error"]) for e in events if e["type"] == "node.retry"]
    assert retries == [("llm_1", "worker lost")]
    run = httpx.get(
        f"{fleet.url('web2')}/api/v1/runs/{first_token['run']}", headers=fleet.auth, timeout=10
    ).json()
    assert (run["status"], run["outputs"]) == ("succeeded", {"text": ALPHABET})
    assert _tasks(fleet.processes["serve2"], "execute_node") == 1


def _login(fleet: Fleet, web: str, username: str) -> httpx.Client:
    """A browser-like client signed in through ``web``; its session works on every process."""
    client = httpx.Client(base_url=fleet.url(web), timeout=60)
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"]
    form = {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    assert client.post("/accounts/login/", data=form).status_code == 302
    return client


async def _watch_until_closed(url: str, session: str, seen_token: threading.Event) -> tuple:
    """Follow a run's WebSocket until the server closes it: its token texts and close code."""
    import aiohttp

    tokens = []
    headers = {"Cookie": f"sessionid={session}", "Origin": url.split("/ws/")[0]}
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(url.replace("http", "ws", 1), headers=headers) as socket:
            async for message in socket:
                events = json.loads(message.data)
                for event in events if isinstance(events, list) else [events]:
                    if event["type"] == "token":
                        tokens.append(event["data"]["text"])
                        seen_token.set()
            return tokens, socket.close_code


def test_a_socket_on_one_web_process_closes_when_access_is_revoked_on_the_other(fleet):
    owner = _login(fleet, "web1", "fleet-owner")
    viewer = _login(fleet, "web2", "fleet-viewer")
    # Not the killed run's words: the studio would answer those from its response cache at once.
    words = ALPHABET.upper()
    started = _start_run(fleet, "web1", "slow", words, until="run.started")
    seen_token = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        url = f"{fleet.url('web2')}/ws/runs/{started['run']}/?after=0"
        watching = pool.submit(
            asyncio.run, _watch_until_closed(url, viewer.cookies["sessionid"], seen_token)
        )
        assert seen_token.wait(60), watching.result() if watching.done() else "no token"
        # The owner removes the viewer on the other web process: the notice reaches the
        # viewer's socket through the channel layer, and the socket closes mid-run.
        removal = owner.post(
            f"/workspace/members/{fleet.viewer_membership}/remove",
            data={"csrfmiddlewaretoken": owner.cookies["csrftoken"]},
        )
        assert removal.status_code == 302, removal.text
        tokens, code = watching.result(timeout=30)
    assert code == 4403, (code, tokens)
    text = "".join(tokens)
    assert text and words.startswith(text) and text != words


def test_no_process_keeps_a_file_that_another_reads(fleet):
    """Each process's var folder holds only its own caches: an upload written to one web
    process's disk, say, would be missing on the worker that ingests it."""
    kept = {
        name: sorted(
            str(path.relative_to(process.var))
            for path in process.var.rglob("*")
            if path.is_file() and not path.name.startswith(PER_PROCESS_FILES)
        )
        for name, process in fleet.processes.items()
    }
    assert kept == dict.fromkeys(fleet.processes, [])
