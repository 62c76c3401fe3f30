#!/bin/sh
# Runs once, at InfluxDB's first setup (docker-entrypoint-initdb.d): maps database "plantmrv" /
# retention policy "autogen" onto the bucket, so the v1 API (/write with db=plantmrv, /query
# with InfluxQL) that plantmrv and Grafana use reaches it.
set -e
bucket_id=$(influx bucket list --name plantmrv --hide-headers | cut -f1)
influx v1 dbrp create --bucket-id "$bucket_id" --db plantmrv --rp autogen --default
