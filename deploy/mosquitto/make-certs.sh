#!/bin/sh
# Self-signed CA and broker certificate for deploy/mosquitto/certs (replace with your own PKI
# in production). Usage: deploy/mosquitto/make-certs.sh [broker-hostname]
set -eu
host=${1:-mosquitto}
dir=$(dirname "$0")/certs
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=plantmrv CA" -keyout ca.key -out ca.crt
openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" -keyout server.key -out server.csr
printf "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n" "$host" > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out server.crt
rm -f server.csr san.ext
chmod 600 ca.key server.key
echo "wrote $dir/ca.crt, server.crt, server.key"
