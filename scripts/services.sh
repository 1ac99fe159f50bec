#!/usr/bin/env bash
# Makes sure the local Redis and RabbitMQ that the scale-out tests use are up.
# On machines that start them already this does nothing.
set -euo pipefail
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/totoshka-redis.log
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "starting rabbitmq-server"
  rabbitmq-server -detached
fi
for _ in $(seq 1 60); do
  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    exit 0
  fi
  sleep 1
done
echo "services.sh: Redis or RabbitMQ did not come up on 127.0.0.1" >&2
exit 1
