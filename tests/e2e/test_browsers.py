"""What a web page could forge, refused end to end: cross-site Origins, text/plain bodies
on state-changing routes, foreign Host headers (DNS rebinding); and the safer defaults."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlpack.settings import Settings
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

GOOD = "https://good.example"
EVIL = "https://evil.example"
ECHO = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("browsers")
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    settings = {
        "trusted_hosts": ["127.0.0.1", "localhost"],
        "cors_settings": {
            "allow_origins": [GOOD],
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["content-type"],
        },
    }
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings)
    yield running
    running.stop()


def _ready(server: RunningServer) -> bool:
    return httpx.get(server.url + "/v2/models/echo/ready").status_code == 200


@pytest.mark.parametrize("path", ["/v2/repository/models/echo/unload", "/v2/models/echo/infer"])
def test_cross_site_text_plain_post_is_refused(server: RunningServer, path: str) -> None:
    response = httpx.post(
        server.url + path, content=ECHO, headers={"Origin": EVIL, "Content-Type": "text/plain"}
    )
    assert response.status_code == 403
    assert "cross-site request from origin 'https://evil.example'" in response.json()["error"]
    assert _ready(server)  # the unload did not happen


def test_text_plain_body_on_a_state_changing_route_is_refused(server: RunningServer) -> None:
    response = httpx.post(
        server.url + "/v2/repository/models/echo/unload",
        content=b"{}",
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 415 and "text/plain" in response.json()["error"]
    assert _ready(server)


def test_allowed_and_same_origin_and_plain_clients_pass(server: RunningServer) -> None:
    json_headers = {"Content-Type": "application/json"}
    allowed = httpx.post(
        server.url + "/v2/models/echo/infer", content=ECHO, headers={**json_headers, "Origin": GOOD}
    )
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == GOOD
    same = httpx.post(
        server.url + "/v2/models/echo/infer",
        content=ECHO,
        headers={**json_headers, "Origin": server.url},
    )
    assert same.status_code == 200
    # No Origin, no Content-Type (curl, tritonclient): the repository API still works.
    assert httpx.post(server.url + "/v2/repository/models/echo/load").status_code == 200
    # A cross-site GET is left to CORS (the browser cannot read the answer).
    assert httpx.get(server.url + "/v2/models/echo", headers={"Origin": EVIL}).status_code == 200
    # A CORS preflight from an allowed origin is answered.
    preflight = httpx.options(
        server.url + "/v2/models/echo/infer",
        headers={"Origin": GOOD, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200


@pytest.mark.parametrize(
    "path", ["/v2/models/echo/infer", "/v2/repository/index", "/v2/health/ready"]
)
def test_foreign_host_is_refused(server: RunningServer, path: str) -> None:
    method = "GET" if "health" in path else "POST"
    response = httpx.request(
        method, server.url + path, content=ECHO, headers={"Host": "rebound.evil.example"}
    )
    assert response.status_code == 400
    assert "not one of this server's trusted_hosts" in response.json()["error"]
    metrics = httpx.get(
        f"http://127.0.0.1:{server.metrics_port}/metrics", headers={"Host": "rebound.evil.example"}
    )
    assert metrics.status_code == 400
    assert (
        httpx.get(server.url + "/v2/health/ready", headers={"Host": "localhost"}).status_code == 200
    )


def test_banner_says_which_interfaces_and_whether_auth_is_on(server: RunningServer) -> None:
    log = server.log()
    assert "loopback only (127.0.0.1); auth OFF" in log, log


def test_start_binds_loopback_by_default() -> None:
    assert Settings().host == "127.0.0.1"
    assert Settings.resolve(None, {"host": "0.0.0.0"}).host == "0.0.0.0"


def test_settings_are_documented_with_their_defaults() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    from mlpack.settings import AuthSettings

    names = [f"auth.{field}" for field in AuthSettings.model_fields]
    names += [
        "host",
        "control_plane",
        "repository_rescan",
        "trusted_hosts",
        "model_error_detail",
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "tls_reload_interval",
        "environment_max_bytes",
        "environment_max_files",
        "environment_max_path_length",
        "environment_max_ratio",
    ]
    for name in names:
        assert f"`{name}`" in readme, name


PAGE = """<!doctype html><title>start</title><script>
fetch("%s/v2/repository/models/echo/unload", {
  method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"
}).then(() => { document.title = "sent"; }, () => { document.title = "failed"; });
</script>"""


def _refused_posts(server: RunningServer) -> float:
    """How many POSTs the REST metrics counted with status 403."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rest_server_requests_total{")
        and 'status_code="403"' in line
        and 'method="POST"' in line
    )


def test_a_real_browser_cannot_unload_a_model_from_another_site(
    server: RunningServer, tmp_path: Path
) -> None:
    """Headless Chromium loads a page from another origin that posts text/plain (no preflight)."""
    import functools
    import http.server
    import subprocess
    import threading

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on this machine (the CI installs Debian's)")
    (tmp_path / "page.html").write_text(PAGE % server.url)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    before = _refused_posts(server)
    try:
        page = f"http://127.0.0.1:{site.server_address[1]}/page.html"
        result = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        site.shutdown()
        site.server_close()
    assert "<title>sent</title>" in result.stdout, result.stdout + result.stderr
    assert _refused_posts(server) == before + 1  # the browser's POST arrived and got a 403
    assert _ready(server)
