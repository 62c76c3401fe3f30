#!/bin/sh
# Self-signed CA and broker certificate for deploy/mosquitto/certs (replace with your own PKI
# in production). Usage:
#   deploy/mosquitto/make-certs.sh [broker-hostname]     CA + broker certificate
#   deploy/mosquitto/make-certs.sh client <broker-user>  a client certificate whose CN is the
#                                                        broker user (for require_certificate)
set -eu
dir=$(dirname "$0")/certs
mkdir -p "$dir"
cd "$dir"
if [ "${1:-}" = client ]; then
  user=${2:?usage: make-certs.sh client <broker-user>}
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$user" -keyout "$user.key" -out "$user.csr"
  printf "extendedKeyUsage=clientAuth\n" > client.ext
  openssl x509 -req -in "$user.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -extfile client.ext -out "$user.crt"
  rm -f "$user.csr" client.ext
  chmod 600 "$user.key"
  echo "wrote $dir/$user.crt and $user.key (give them to that client only: mqtt.tls.cert_file, key_file)"
  exit 0
fi
host=${1:-mosquitto}
openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=plantmrv CA" -keyout ca.key -out ca.crt
openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" -keyout server.key -out server.csr
printf "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n" "$host" > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out server.crt
rm -f server.csr san.ext
chmod 600 ca.key server.key
echo "wrote $dir/ca.crt, server.crt, server.key"
