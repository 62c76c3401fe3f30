#!/bin/sh
# The services' InfluxDB tokens, least privilege (run by the one-shot `influxdb-tokens` service
# of docker-compose.yml with the operator token, after InfluxDB is healthy):
#   writer.token  read + write on bucket plantmrv: ingest, analytics
#   reader.token  read only on bucket plantmrv:    the API, Grafana
# written to /run/influx-tokens, a volume the services mount read-only. Runs again harmlessly:
# tokens that exist are kept. Revoke or rotate with `influx auth` as the operator (then delete
# the file and restart this service).
# Results share the bucket with raw data: plantmrv reads and writes one database (a results
# bucket needs the engine to write measurement mrv to a database of its own; the API already reads
# it from api.results_database).
set -eu
tokens=/run/influx-tokens
export INFLUX_HOST=http://influxdb:8086
INFLUX_TOKEN=$(cat /run/secrets/influx_admin_token)
export INFLUX_TOKEN
org=${INFLUX_ORG:-plantmrv}
bucket_id=$(influx bucket list --org "$org" --name plantmrv --hide-headers | cut -f1)
umask 022
make_token() {  # file, description, permissions...
  file=$1 description=$2
  shift 2
  [ -s "$tokens/$file" ] && { echo "kept $tokens/$file"; return; }
  influx auth create --org "$org" --description "$description" "$@" --hide-headers | cut -f3 > "$tokens/$file.tmp"
  test -s "$tokens/$file.tmp"
  mv "$tokens/$file.tmp" "$tokens/$file"
  echo "wrote $tokens/$file"
}
make_token writer.token "plantmrv ingest + analytics (read/write plantmrv)" --read-bucket "$bucket_id" --write-bucket "$bucket_id"
make_token reader.token "plantmrv API + Grafana (read plantmrv)" --read-bucket "$bucket_id"
