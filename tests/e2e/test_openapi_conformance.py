"""Every served OpenAPI document fuzzed by schemathesis against a real ``mlpack start``.

Zero 5xx and zero responses that break the document (status codes, content types, headers,
schemas, 405 with ``Allow``). A second server with API keys on (issue 15) is fuzzed the same
way through the access guard, sending a control-plane key. Deterministic generation and a
bounded number of examples per operation keep the run reproducible and well under a minute.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "unsupported_method",
        "allow_header_conformance",
    ]
)
MAX_EXAMPLES = 20
# The main document, then each model's (and each model version's) own.
DOCUMENTS = [
    "/v2/docs/dataplane.json",
    "/v2/models/bytes/docs/dataplane.json",
    "/v2/models/numbers/docs/dataplane.json",
    "/v2/models/echo/docs/dataplane.json",
    "/v2/models/versioned/docs/dataplane.json",
    "/v2/models/versioned/versions/1/docs/dataplane.json",
    "/v2/models/versioned/versions/2/docs/dataplane.json",
    "/v2/models/versioned/versions/10/docs/dataplane.json",
]


def models_folder(root: Path) -> Path:
    """The protocol test models plus ``echo`` and three versions of ``versioned``."""
    folder = root / "models"
    shutil.copytree(ASSETS / "protocol", folder)
    for name in ("echo", "versions"):
        shutil.copytree(ASSETS / "models" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("openapi")
    running = start_server(models_folder(root), root)
    yield running
    running.stop()


def schemathesis_command() -> str:
    beside = Path(sys.executable).with_name("st")
    found = str(beside) if beside.exists() else shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    return found


CONTROL_KEY = "fuzz-control-key"


@pytest.fixture(scope="module")
def server_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("openapi-auth")
    settings = {
        "auth": {"data_plane_tokens": ["fuzz-data-key"], "control_plane_tokens": [CONTROL_KEY]}
    }
    running = start_server(models_folder(root), root, settings=settings)
    yield running
    running.stop()


@pytest.mark.parametrize("document", DOCUMENTS)
def test_served_document_matches_server(
    server: RunningServer, document: str, tmp_path: Path
) -> None:
    _fuzz(server, server.url + document, tmp_path)


@pytest.mark.parametrize("document", DOCUMENTS[:2])
def test_served_document_matches_server_with_auth_on(
    server_with_auth: RunningServer, document: str, tmp_path: Path
) -> None:
    import httpx

    key = {"Authorization": f"Bearer {CONTROL_KEY}"}
    assert httpx.get(server_with_auth.url + document).status_code == 401
    schema = tmp_path / "dataplane.json"
    schema.write_bytes(httpx.get(server_with_auth.url + document, headers=key).content)
    _fuzz(server_with_auth, str(schema), tmp_path, ["-H", f"Authorization: Bearer {CONTROL_KEY}"])


def _fuzz(
    server: RunningServer, document: str, tmp_path: Path, extra: list[str] | None = None
) -> None:
    command = [
        schemathesis_command(),
        "run",
        document,
        *(extra or []),
        "--url",
        server.url,
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        # Stateful runs chain calls (unload included) across operations: kept out so each
        # document sees the same server and the run stays bounded.
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{server.log()[-3000:]}"
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout
