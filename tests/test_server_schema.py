"""schemathesis against the service's own /openapi.json: generated valid
and invalid requests for every operation (coverage and fuzzing phases),
checking for server errors (5xx), undocumented status codes, content types
and headers, responses that violate their schema, and invalid requests that
are accepted.  A modest example count keeps it well under a minute.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from server_utils import Server, add_key, bearer, make_dataset

pytestmark = pytest.mark.timeout(300)

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    )
)


def test_schemathesis_finds_nothing(tmp_path):
    path, _ = make_dataset(tmp_path, n=400, seed=31)
    keys = tmp_path / "keys.json"
    token = add_key(keys, "schemathesis")
    with Server(
        path,
        "--api-keys",
        str(keys),
        "--rate-limit",
        "0",
        "--no-audit-log",
        workdir=tmp_path,
    ) as srv:
        doc = requests.get(srv.url + "/openapi.json").json()
        assert doc["openapi"].startswith("3.") and "/v1/check" in doc["paths"]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                srv.url + "/openapi.json",
                "-H",
                f"Authorization: Bearer {token}",
                "--checks",
                CHECKS,
                "--max-examples",
                "20",
                "--seed",
                "20261128",
                "--generation-database",
                "none",
                "--no-color",
                "--mode",
                "all",
                "--request-timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
        assert "passed" in run.stdout
        # the server is still healthy and answering
        assert (
            requests.get(srv.url + "/v1/ping", headers=bearer(token)).status_code == 200
        )
        assert "Traceback" not in srv.stderr()
