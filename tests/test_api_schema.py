"""schemathesis against the OpenAPI schema, over the ASGI app and the real influxd, with every
check (as `--checks all`: status codes, content types, schemas, headers, Allow, positive and
negative data, ignored auth, ...) for valid and invalid inputs and tokens of different roles; its
own command line against the served API; and an example on every endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode

from tests.test_api_support import PROJECT_ID, TOKENS, api_env, served  # noqa: F401

OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/projects"),
    ("GET", "/projects/{project_id}"),
    ("GET", "/projects/{project_id}/reductions"),
    ("GET", "/projects/{project_id}/monitoring-report"),
    ("GET", "/projects/{project_id}/monitoring-report.html"),
    ("GET", "/projects/{project_id}/export"),
    ("GET", "/projects/{project_id}/acceptances"),
    ("POST", "/projects/{project_id}/acceptances"),
    ("GET", "/admin/tokens"),
]


CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def schema(api_env):
    return schemathesis.openapi.from_asgi("/openapi.json", api_env.app, config=schemathesis.config.SchemathesisConfig.from_path(CONFIG))


def test_schema_lists_exactly_the_endpoints_of_the_issue_and_token_admin(api_env):
    paths = api_env.client.get("/openapi.json").json()["paths"]
    assert {(m.upper(), p) for p, ops in paths.items() for m in ops} == set(OPERATIONS)
    assert api_env.client.get("/docs").status_code == 200


def test_every_endpoint_documents_an_example(api_env):
    doc = api_env.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = (op["responses"].get("200") or op["responses"]["201"])["content"]
            examples = []
            for media in ok.values():
                if "example" in media or "examples" in media:
                    examples.append(True)
                ref = media.get("schema", {}).get("$ref") or media.get("schema", {}).get("items", {}).get("$ref")
                if ref and schemas[ref.rsplit("/", 1)[-1]].get("examples"):
                    examples.append(True)
            assert examples, f"{method.upper()} {path} has no response example"
            for param in op.get("parameters", []):
                assert param.get("examples") or param["schema"].get("examples") or param["schema"].get("enum") or "default" in param["schema"], (path, param["name"])


# negative generation needs parameters to break: /health, /projects and /admin/tokens have none
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [(m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if "{" in p]


@pytest.mark.parametrize("method,path,mode", CASES)
def test_no_server_error_for_any_generated_request(api_env, schema, method, path, mode):
    operation = schema[path][method]
    roles = st.sampled_from(["operator", "verifier", "verifier_other", "admin", None])
    project = st.sampled_from([PROJECT_ID, "hcmc-vsd", "nope"])

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), role=roles, pid=project, use_real=st.booleans())
    def run(case, role, pid, use_real):
        negative = {loc for loc, c in (case.meta.components.items() if case.meta else ()) if c.mode == GenerationMode.NEGATIVE}
        if use_real and not negative and case.path_parameters and "project_id" in case.path_parameters:
            case.path_parameters = {**case.path_parameters, "project_id": pid}
        # a case whose invalid part is its headers must reach the API without our token
        headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role and ParameterLocation.HEADER not in negative else {}
        # every check schemathesis has (its default set: all of them, configured by schemathesis.toml)
        case.call_and_validate(headers=headers)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("role", ["admin", "verifier"])
def test_schemathesis_command_line_runs_every_check_against_the_served_api(api_env, role, tmp_path):
    """`schemathesis run --checks all` as a third party would run it (its own HTTP client, a real socket)."""
    import urllib3

    assert not urllib3.__version__.split(".")[-1].startswith("9"), (
        f"urllib3 {urllib3.__version__} is urllib3-future, which breaks `requests` and so schemathesis' command line: run `make install` (see the Makefile)"
    )
    with served(api_env.app) as base:
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(CONFIG), "run", f"{base}/openapi.json", "--checks", "all",
             "-H", f"Authorization: Bearer {TOKENS[role]}", "--max-examples", "10", "--workers", "1", "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "SCHEMATHESIS_HOOKS": ""}, cwd=tmp_path,  # its cache dir goes there
        )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"Selected: {len(OPERATIONS)}/{len(OPERATIONS)}" in proc.stdout and " passed" in proc.stdout
