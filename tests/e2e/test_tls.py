"""TLS and mutual TLS on REST and gRPC, with a CA and certificates made in the test:
tritonclient (http and grpc, in a subprocess), `mlpack infer`, plain clients; reload on
SIGHUP. Nothing talks plaintext to a TLS port successfully."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import ASSETS, RunningServer, start_server

trustme = pytest.importorskip("trustme")

pytestmark = pytest.mark.e2e

ECHO = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [7]}]}

TRITON = r"""
import json, sys
import numpy as np
kind, url, ca, cert, key = sys.argv[1:6]
data = np.array([7], dtype=np.int64)
try:
    if kind == "http":
        import gevent.ssl
        import tritonclient.http as client
        options = {"ca_certs": ca}
        if cert:
            options.update(certfile=cert, keyfile=key)
        triton = client.InferenceServerClient(
            url, ssl=True, ssl_options=options,
            ssl_context_factory=gevent.ssl.create_default_context,
        )
    else:
        import tritonclient.grpc as client
        triton = client.InferenceServerClient(
            url, ssl=True, root_certificates=ca,
            private_key=key or None, certificate_chain=cert or None,
        )
    tensor = client.InferInput("x", [1], "INT64")
    tensor.set_data_from_numpy(data)
    result = triton.infer("echo", [tensor])
    print(json.dumps({"ok": result.as_numpy("x").tolist()}))
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example")
    files = {
        "ca": folder / "ca.pem",
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "client_cert": folder / "client.pem",
        "client_key": folder / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(files["cert"]), append=True)
    client.private_key_pem.write_to_path(str(files["client_key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    return {"ca_object": ca, **{k: str(v) for k, v in files.items()}}


def _serve(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Any], mutual: bool
) -> RunningServer:
    folder = tmp_path_factory.mktemp("tls")
    import shutil

    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    settings: dict[str, Any] = {"tls_cert_file": pki["cert"], "tls_key_file": pki["key"]}
    if mutual:
        settings["tls_client_ca_file"] = pki["ca"]
    return start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings, wait=False)


def _wait_ready(server: RunningServer, verify: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(_https(server) + "/v2/health/ready", verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.process.poll() is None, server.log()
        time.sleep(0.1)
    raise TimeoutError(server.log())


def _trust(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


def _https(server: RunningServer) -> str:
    return f"https://127.0.0.1:{server.http_port}"


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Any]
) -> Iterator[RunningServer]:
    server = _serve(tmp_path_factory, pki, mutual=False)
    try:
        _wait_ready(server, ssl.create_default_context(cafile=pki["ca"]))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mtls_server(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Any]
) -> Iterator[RunningServer]:
    server = _serve(tmp_path_factory, pki, mutual=True)
    context = ssl.create_default_context(cafile=pki["ca"])
    context.load_cert_chain(pki["client_cert"], pki["client_key"])
    try:
        _wait_ready(server, context)
        yield server
    finally:
        server.stop()


def _triton(kind: str, url: str, ca: str, cert: str = "", key: str = "") -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", TRITON, kind, url, ca, cert, key],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_rest_and_grpc_speak_tls_only(tls_server: RunningServer, pki: dict[str, Any]) -> None:
    ok = httpx.post(
        _https(tls_server) + "/v2/models/echo/infer", json=ECHO, verify=_trust(pki["ca"])
    )
    assert ok.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{tls_server.http_port}/v2/models/echo/infer", json=ECHO)
    with pytest.raises(httpx.ConnectError):  # not signed by a CA the client trusts
        httpx.get(_https(tls_server) + "/v2/health/ready")
    assert "https://" in tls_server.log() and "TLS on" in tls_server.log()


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_tritonclient_over_tls(tls_server: RunningServer, pki: dict[str, Any], kind: str) -> None:
    port = tls_server.http_port if kind == "http" else tls_server.grpc_port
    assert _triton(kind, f"127.0.0.1:{port}", pki["ca"]) == {"ok": [7]}


@pytest.mark.parametrize("kind", ["http", "grpc"])
def test_tritonclient_over_mutual_tls(
    mtls_server: RunningServer, pki: dict[str, Any], kind: str
) -> None:
    port = mtls_server.http_port if kind == "http" else mtls_server.grpc_port
    url = f"127.0.0.1:{port}"
    assert _triton(kind, url, pki["ca"], pki["client_cert"], pki["client_key"]) == {"ok": [7]}
    refused = _triton(kind, url, pki["ca"])  # no client certificate
    assert "error" in refused


def test_mutual_tls_refuses_a_client_without_a_certificate(
    mtls_server: RunningServer, pki: dict[str, Any]
) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(_https(mtls_server) + "/v2/health/ready", verify=_trust(pki["ca"]))


def _infer(args: list[str], tmp_path: Path, name: str) -> tuple[int, str, Path]:
    from typer.testing import CliRunner

    from mlpack.cli import create_app

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(ECHO) + "\n")
    output = tmp_path / f"{name}.jsonl"
    argv = ["infer", "-m", "echo", "-i", str(source), "-o", str(output), "--no-progress"]
    result = CliRunner().invoke(create_app(), [*argv, "--retries", "0", *args])
    return result.exit_code, result.output, output


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_mlpack_infer_with_ca_and_client_certificate(
    tls_server: RunningServer,
    mtls_server: RunningServer,
    pki: dict[str, Any],
    transport: str,
    tmp_path: Path,
) -> None:
    for server, extra, name in (
        (tls_server, [], "tls"),
        (mtls_server, ["--cert", pki["client_cert"], "--key", pki["client_key"]], "mtls"),
    ):
        port = server.http_port if transport == "rest" else server.grpc_port
        url = f"127.0.0.1:{port}"
        code, output, written = _infer(
            ["-u", url, "-t", transport, "--ca", pki["ca"], *extra], tmp_path, f"{name}-{transport}"
        )
        assert code == 0, output
        assert json.loads(written.read_text())["outputs"][0]["data"] == [7]
    if transport == "rest":  # --insecure skips verification (REST only)
        code, output, _ = _infer(
            ["-u", f"https://127.0.0.1:{tls_server.http_port}", "--insecure"], tmp_path, "insecure"
        )
        assert code == 0, output


def test_certificates_reload_on_sighup(
    tmp_path_factory: pytest.TempPathFactory, pki: dict[str, Any], tmp_path: Path
) -> None:
    """A certificate from a second CA replaces the first: new connections see it after SIGHUP."""
    import shutil

    files = {name: tmp_path / Path(pki[name]).name for name in ("cert", "key")}
    for name, path in files.items():
        shutil.copy(pki[name], path)
    folder = tmp_path_factory.mktemp("reload")
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    settings = {
        "tls_cert_file": str(files["cert"]),
        "tls_key_file": str(files["key"]),
        "tls_reload_interval": 3600,  # only SIGHUP reloads in this test
    }
    server = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings, wait=False)
    try:
        _wait_ready(server, ssl.create_default_context(cafile=pki["ca"]))
        second = trustme.CA()
        second_ca = tmp_path / "second-ca.pem"
        second.cert_pem.write_to_path(str(second_ca))
        issued = second.issue_cert("127.0.0.1")
        issued.private_key_pem.write_to_path(str(files["key"]))
        issued.cert_chain_pems[0].write_to_path(str(files["cert"]))
        with pytest.raises(httpx.ConnectError):
            httpx.get(_https(server) + "/v2/health/live", verify=_trust(str(second_ca)))
        os.killpg(server.process.pid, signal.SIGHUP)
        _wait_ready(server, ssl.create_default_context(cafile=str(second_ca)))
        grpc_url = f"127.0.0.1:{server.grpc_port}"
        assert _triton("grpc", grpc_url, str(second_ca)) == {"ok": [7]}
        assert "TLS certificate reloaded" in server.log()
        assert server.process.poll() is None
    finally:
        server.stop()
