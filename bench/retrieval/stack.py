"""The bench's own stack: embedded PostgreSQL and Redis under ``BENCH_DIR``, and the cleanup
that empties them between measurements."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from bench.retrieval import BENCH_DIR, REPO
from studio import embedded, launch

# The slug prefix of every workspace the bench creates (and ``cleanup`` removes).
WORKSPACE_PREFIX = "speed-"


@dataclass
class Stack:
    """What this script started, so that it stops exactly that."""

    redis: subprocess.Popen | None = None
    postgres: bool = False

    def start(self) -> None:
        """The embedded Redis and PostgreSQL under BENCH_DIR, then the migrations and Django."""
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        self.redis = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
        os.environ["DATABASE_URL"] = embedded.postgres_url()
        self.postgres = True
        result = subprocess.run(
            [launch.PYTHON, "manage.py", "migrate", "--no-input"],
            cwd=REPO,
            env=os.environ,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit("manage.py migrate failed")
        import django

        django.setup()

    def stop(self) -> None:
        launch.stop(self.redis)
        if self.postgres:
            from django.conf import settings
            from django.db import connections

            if settings.configured:
                connections.close_all()
            embedded.postgres_stop()


def cleanup() -> None:
    """Remove every chunk, the bench's workspaces and the queued ingestion tasks (left by this
    run or an interrupted one). Only ever run on the bench's own database and Redis.

    TRUNCATE rather than DELETE: it also empties the HNSW index at once, where deleted tuples
    would stay in the graph until a long VACUUM. No worker ever runs the tasks that
    ``document_add_text`` queues (the ingestion runs in this process), so they are dropped.
    """
    import redis
    from django.db import connection

    from knowledge.models import KnowledgeBase
    from knowledge.services.bases import kb_delete
    from workspaces.models import Workspace

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE knowledge_chunk")
    for base in KnowledgeBase.objects.filter(workspace__slug__startswith=WORKSPACE_PREFIX):
        kb_delete(knowledge_base=base)  # removes the stored files too
    Workspace.objects.filter(slug__startswith=WORKSPACE_PREFIX).delete()
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
