"""TLS: the API serves HTTPS with `api.tls`, and reaches an InfluxDB that serves HTTPS with a
private CA through `influxdb.tls.ca_file`. Certificates come from Debian's `openssl`; influxd
is the real one with `https-enabled`."""

from __future__ import annotations

import dataclasses
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from plantmrv.app.cli import app as cli
from plantmrv.config import InfluxConfig
from plantmrv.influx import InfluxClient, InfluxError
from plantmrv.localservices import InfluxService, ServiceError, free_port, influxd_service
from plantmrv.influxwrite import write_batch
from tests.test_api_support import TOKENS, hash_token

ROOT = Path(__file__).resolve().parent.parent
PLANTMRV = str(Path(sys.executable).with_name("plantmrv"))


def openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it (EC P-256, two days)."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=plantmrv test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    os.chmod(d / "server.key", 0o600)
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


@dataclasses.dataclass
class HttpsInflux(InfluxService):
    ca_file: str = ""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5, verify=ssl.create_default_context(cafile=self.ca_file)).status_code == 204
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def influxd_https(pki, tmp_path_factory):
    plain = influxd_service(tmp_path_factory.mktemp("influxd-tls"))
    conf = plain.workdir / "influxdb.conf"
    conf.write_text(conf.read_text().replace("[http]\n", f'[http]\n  https-enabled = true\n  https-certificate = "{pki["cert"]}"\n  https-private-key = "{pki["key"]}"\n'))
    svc = HttpsInflux(**{f.name: getattr(plain, f.name) for f in dataclasses.fields(plain)}, ca_file=str(pki["ca"]))
    try:
        svc.start()
    except ServiceError as exc:
        pytest.fail(f"influxd with TLS did not start: {exc}", pytrace=False)
    yield svc
    svc.stop()


def test_influx_client_verifies_influxdb_against_the_configured_ca(influxd_https, pki):
    client = InfluxConfig(url=influxd_https.url, database="tls", tls={"ca_file": str(pki["ca"])}).client()
    client.create_database()
    s = 1_773_100_800 * 10**9
    from plantmrv.batch import SampleBatch, Series

    write_batch(client, SampleBatch.from_columns({Series.of("pump", "energy_kwh", site="danang", asset="pump1"): (s + np.arange(3) * 10**9, [1.0, 2.0, 3.5])}))
    q = "SELECT energy_kwh FROM pump"
    assert client.query(q)[0].columns["energy_kwh"].tolist() == [1.0, 2.0, 3.5]  # MessagePack over plantmrv's own connection
    assert client.query(q, fmt="json")[0].columns["energy_kwh"].tolist() == [1.0, 2.0, 3.5]  # chunked JSON over httpx
    assert client.ping().startswith("1.")
    client.close()

    untrusted = InfluxClient(influxd_https.url, database="tls", max_retries=0)
    with pytest.raises(InfluxError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        untrusted.query(q)
    untrusted.close()
    with pytest.raises(ValueError, match=r"^influxdb\.tls\.ca_file .*missing\.pem: cannot load a CA certificate"):
        InfluxConfig(url=influxd_https.url, tls={"ca_file": str(pki["ca"].with_name("missing.pem"))}).client()


def _serve(cfg_path: Path, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen([PLANTMRV, "api", "-c", str(cfg_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=tmp_path)


def test_api_serves_https_and_reaches_influxdb_over_tls(influxd_https, pki, tmp_path):
    port = free_port()
    cfg = {
        "influxdb": {"url": influxd_https.url, "database": "tls", "tls": {"ca_file": str(pki["ca"])}},
        "api": {"port": port, "tls": {"cert_file": str(pki["cert"]), "key_file": str(pki["key"])},
                "tokens": [{"name": "ops", "role": "operator", "sha256": hash_token(TOKENS["operator"])}]},
    }
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = _serve(path, tmp_path)
    ca = ssl.create_default_context(cafile=str(pki["ca"]))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"https://127.0.0.1:{port}/health", verify=ca, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the API did not answer over HTTPS within 30 s"
                time.sleep(0.2)
        assert health.json()["influxdb"] == "ok"  # the API's own queries went over TLS, verified with the CA file
        assert health.headers["strict-transport-security"] == "max-age=31536000"
        assert httpx.get(f"https://127.0.0.1:{port}/projects", verify=ca, headers={"Authorization": f"Bearer {TOKENS['operator']}"}).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)  # no plain HTTP on the TLS port
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            httpx.get(f"https://127.0.0.1:{port}/health", timeout=2)  # a client that does not trust the CA
    finally:
        proc.terminate()
        proc.wait(10)
    assert "tls=on" in proc.stderr.read()


def test_api_refuses_to_start_with_a_key_that_does_not_match(pki, tmp_path):
    other = tmp_path / "other.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(other)], check=True, capture_output=True)
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump({"api": {"tls": {"cert_file": str(pki["cert"]), "key_file": str(other)}}}))
    r = CliRunner().invoke(cli, ["api", "-c", str(path)])
    assert r.exit_code == 78  # EX_CONFIG: a restart cannot fix it
    assert f"{path}: api.tls: cannot use cert_file {pki['cert']} with key_file {other}" in r.output
