#!/usr/bin/env bash
# Make sure Debian's influxd and mosquitto binaries are present (the tests and the demo run
# them as the user's own processes on free loopback ports; the system services are not used),
# promtool (the metrics tests check every service's metric names with it), and what the report
# tests look with: headless Chromium, CJK fonts, tesseract OCR (English and Japanese),
# poppler's pdfinfo/pdftotext, and LibreOffice Calc (headless), which recalculates the xlsx
# exports in the workbook tests.
set -euo pipefail
missing=()
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || missing+=(influxdb)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing+=(fonts-noto-cjk)
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
[ -e /usr/share/tesseract-ocr/5/tessdata/jpn.traineddata ] || missing+=(tesseract-ocr-jpn)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
# promtool (Debian's prometheus package) checks every service's metric names in the tests
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v soffice >/dev/null 2>&1 || missing+=(libreoffice-calc-nogui)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # the packages may start system-wide daemons; ours run separately on free ports
  exit 0
fi
if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "plantmrv needs Debian's ${missing[*]} and this user cannot install them." >&2
echo "Run as root (or with sudo):  apt-get install -y ${missing[*]}   then run make again." >&2
exit 1
