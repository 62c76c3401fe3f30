#!/bin/sh
# Random secrets for deploy/docker-compose.yml, one file each in deploy/secrets/ (mode 600),
# never overwriting one that exists. Usage: deploy/make-secrets.sh
set -eu
dir=$(dirname "$0")/secrets
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
for name in influx_admin_password influx_admin_token grafana_admin_password mqtt_ingest_password mqtt_healthcheck_password; do
  if [ ! -s "$dir/$name" ]; then
    openssl rand -base64 33 | tr -d '/+=\n' > "$dir/$name"
    echo "wrote $dir/$name"
  fi
done
