"""``manage.py beat``: the Celery beat scheduler, run once across the fleet (a Redis lock)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import redis
from django.core.management.base import BaseCommand, CommandError

from studio import redis_client
from studio.celery import app
from studio.embedded import var_dir
from workers.beat_lock import BeatLock, keep

logger = logging.getLogger(__name__)

# The exit status of a beat that lost its lock: it stops at once, so that it never sends the
# periodic tasks alongside the beat that holds the lock now.
LOST_LOCK = 3


class Command(BaseCommand):
    help = (
        "Run the beat scheduler (the reapers, the alerts check). Only one runs across the fleet: "
        "a second one waits to take over (or, with --no-wait, exits with status 1)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--schedule",
            type=Path,
            default=None,
            help="beat's schedule file (default: $STUDIO_VAR_DIR/celerybeat-schedule)",
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="exit with status 1 when another beat holds the lock, instead of waiting",
        )
        parser.add_argument(
            "--lock-ttl",
            type=float,
            default=30.0,
            help="seconds the lock outlives a holder that stopped renewing it (killed, cut off)",
        )
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, schedule: Path | None, no_wait: bool, lock_ttl: float, **options):
        if lock_ttl < 3:
            raise CommandError("--lock-ttl must be at least 3 seconds")
        lock = BeatLock(redis_client.client(), ttl_s=lock_ttl)
        try:
            if not lock.acquire():
                if no_wait:
                    raise CommandError(
                        f"another beat holds the lock ({lock.holder()}): only one beat may run "
                        "across the fleet; exiting"
                    )
                self._say_waiting(lock.holder(), lock_ttl)
                lock.wait()
        except redis.RedisError as exc:
            raise CommandError(f"cannot reach Redis for the beat lock: {exc}") from exc
        self.stdout.write(f"beat: holding the beat lock as {lock.token}")
        self.stdout.flush()
        stop = keep(lock, on_lost=self._lost)
        try:
            app.Beat(
                schedule=str(schedule or var_dir() / "celerybeat-schedule"),
                loglevel=options["loglevel"],
                quiet=True,
            ).run()
        finally:
            stop.set()
            # Without Redis the lock cannot be released, but it lapses by itself.
            with contextlib.suppress(redis.RedisError):
                lock.release()

    def _say_waiting(self, holder: str | None, ttl: float) -> None:
        self.stdout.write(
            f"beat: another beat holds the lock ({holder}); waiting to take over "
            f"(it lapses {ttl:.0f} s after its holder stops)"
        )
        self.stdout.flush()

    @staticmethod
    def _lost(reason: str) -> None:
        # No graceful stop: beat's loop may be asleep until its next task is due, and each
        # moment it lives on risks a second copy of every periodic task.
        logger.critical("beat: lost the beat lock (%s); stopping now", reason)
        logging.shutdown()
        os._exit(LOST_LOCK)
