"""``make up``: the embedded servers, migrations, the demo seed, the web server and a worker.

Everything runs in the foreground and stops together on Ctrl-C. With ``DATABASE_URL`` or
``REDIS_URL`` set, those servers are used instead of the embedded ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from studio import embedded, launch

PORT = int(os.environ.get("STUDIO_PORT", "8000"))
HOST = os.environ.get("STUDIO_HOST", "127.0.0.1")


def manage(*args: str) -> str:
    result = subprocess.run(
        [launch.PYTHON, "manage.py", *args],
        cwd=launch.BASE_DIR,
        env=os.environ,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"manage.py {' '.join(args)} failed")
    return result.stdout


def main() -> None:
    redis_process = None
    embedded_pg = not os.environ.get("DATABASE_URL")
    if not os.environ.get("REDIS_URL"):
        redis_process = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
        print(f"redis      embedded, {embedded.redis_socket()}")
    if embedded_pg:
        os.environ["DATABASE_URL"] = embedded.postgres_url()
        print(f"postgres   embedded (pgvector), {embedded.var_dir() / 'pg'}")
    print("migrating…")
    manage("migrate", "--no-input")
    seeded = manage("seed_demo").strip()
    print("preparing the bundled model (converted once; the first time takes about 40 s)…")
    print(manage("prepare_models").strip())
    processes = [
        launch.start(launch.web_command(PORT, HOST)),
        launch.start(
            launch.worker_command(["flows", "inference", "maintenance", "ingestion", "retrieval"])
        ),
    ]
    stopping = False

    def shutdown(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping…")
        for process in processes:
            launch.stop(process)
        launch.stop(redis_process)
        if embedded_pg:
            embedded.postgres_stop()
        raise SystemExit(0)

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        launch.wait_for_port(PORT, HOST, process=processes[0])
        print(
            f"\nThe studio runs at http://{HOST}:{PORT}/  (Ctrl-C stops everything)\n"
            f"  log in as admin: {seeded}\n"
            f"  chat with the demo flow: http://{HOST}:{PORT}/chat/assistant/\n"
            f"  ask the studio's README, with sources: http://{HOST}:{PORT}/chat/docs/\n"
            f"  knowledge bases: http://{HOST}:{PORT}/knowledge/\n"
            f"  an API key: .venv/bin/python manage.py apikey create\n"
        )
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("a process exited; stopping the rest")
    finally:
        shutdown()


if __name__ == "__main__":
    main()
