#!/usr/bin/env bash
# Make sure the shared PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are up,
# starting them when they are down; exit non-zero, loudly, when they cannot be reached.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2 >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! pg_up; then
  echo "ensure-services: PostgreSQL is down on 127.0.0.1:5432, starting it" >&2
  if [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "ensure-services: Redis is down on 127.0.0.1:6379, starting it" >&2
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi

ok=1
pg_up || { echo "ensure-services: FATAL: PostgreSQL on 127.0.0.1:5432 cannot be reached" >&2; ok=0; }
redis_up || { echo "ensure-services: FATAL: Redis on 127.0.0.1:6379 cannot be reached" >&2; ok=0; }
[ "$ok" = 1 ] || exit 1
echo "ensure-services: PostgreSQL and Redis are up"
