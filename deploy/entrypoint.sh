#!/bin/sh
# The container's processes, by first argument (compose's and Helm's `command`/`args`):
#   web                  daphne serving pages, API and WebSockets on $STUDIO_PORT (8000)
#   worker --queues Q …  one Celery pool for queues Q (manage.py worker --help)
#   beat                 the periodic tasks; one across the fleet (a Redis lock)
#   migrate              the database schema (a one-shot job before web and workers start)
#   manage …             any manage.py command (createsuperuser, seed_demo, apikey …)
set -eu
cd /app
process="${1:-web}"
[ "$#" -gt 0 ] && shift
case "$process" in
  web)
    # --proxy-headers: behind the load balancer, REMOTE_ADDR is the client's (login throttling).
    exec python -m daphne -b 0.0.0.0 -p "${STUDIO_PORT:-8000}" --proxy-headers "$@" \
      studio.asgi:application ;;
  worker)
    exec python manage.py worker "$@" ;;
  beat)
    exec python manage.py beat "$@" ;;
  migrate)
    exec python manage.py migrate --no-input ;;
  manage)
    exec python manage.py "$@" ;;
  *)
    echo "unknown process '$process': web, worker, beat, migrate or manage" >&2
    exit 64 ;;
esac
