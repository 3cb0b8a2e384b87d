#!/bin/sh
# Starts one service of the suite by name.
set -eu
service="${1:?usage: run-service.sh ingress|greylist|queue-store|delivery-worker|admin-api}"
case "$service" in
  ingress | greylist | queue-store | delivery-worker | admin-api) ;;
  *)
    echo "run-service.sh: unknown service \"$service\"" >&2
    exit 64
    ;;
esac
exec node --import tsx "/app/services/$service/src/main.ts"
