#!/usr/bin/env bash
# Start the services the tests talk to, where they are missing: Redis on 127.0.0.1:6379,
# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`), Debian's prometheus (the server and promtool),
# and Debian's chromium (the dashboard's browser tests, headless).
set -euo pipefail

apt_install() {
  command -v apt-get >/dev/null || { echo "services: no apt-get to install $*" >&2; return 1; }
  [ -n "$(find /var/lib/apt/lists -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | head -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 \
    || su postgres -c "createdb test"
fi

{ command -v promtool && command -v prometheus; } >/dev/null || apt_install prometheus
command -v chromium >/dev/null || apt_install chromium
echo "services: redis $(redis-cli -h 127.0.0.1 ping), postgres $(pg_isready -h 127.0.0.1 -q && echo up), $(promtool --version 2>&1 | head -1), $(chromium --version 2>/dev/null)"
