"""The image `mlpack build` makes, run the way KServe (or the generated Deployment) runs it.

Environment-only configuration (the variables the rendered ClusterServingRuntime and
KServe set), arbitrary UID in group 0, read-only root filesystem with a tmpfs /tmp, the
model mounted read-only at /mnt/models with no model-settings.json; V2 REST and gRPC;
SIGTERM under steady load with the drain delay; then two replicas behind HAProxy (Debian's
package, on loopback) with one stopped under load. Failures are counted from the clients'
results and the servers' access logs, never from timings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlpack.deploy import load_values, render_manifests
from tests.conftest import free_ports
from tests.e2e.test_build import RUN_LABEL, _build, _docker, docker_ready  # noqa: F401
from tests.helpers.server import ASSETS

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]

MODEL = "linear-isvc"
MOUNTED_WEIGHTS = [2.0, 0.5, 1.5]  # differ from the image's own weights.json (all 1.0)
ROW = [1.0, 2.0, 3.0]
EXPECTED = sum(w * x for w, x in zip(MOUNTED_WEIGHTS, ROW, strict=False))
BODY = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": ROW}]}


@pytest.fixture(scope="module")
def image(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The project in tests/assets/kserve_project built once, labelled as this run's."""
    request.getfixturevalue("docker_ready")  # test_build.py's: skip or fail without an engine
    work = tmp_path_factory.mktemp("kserve-build")
    folder = work / "project"
    shutil.copytree(ASSETS / "kserve_project", folder)
    run = uuid.uuid4().hex[:8]
    tag = f"mlpack-test-kserve:{run}"
    try:
        _build(folder, tag, work, run)
        yield tag
    finally:
        _docker("image", "rm", "-f", tag, check=False)
        # What is left of this run only (test_build.py's run label; never another run's).
        _docker("image", "prune", "-f", "--filter", f"label={RUN_LABEL}={run}", check=False)


@pytest.fixture(scope="module")
def mounted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What KServe's storage initializer leaves in /mnt/models: artefacts, no settings."""
    folder = tmp_path_factory.mktemp("mnt-models")
    (folder / "weights.json").write_text(json.dumps({"weights": MOUNTED_WEIGHTS}))
    folder.chmod(0o755)
    (folder / "weights.json").chmod(0o644)
    return folder


def kserve_environment(tag: str) -> dict[str, str]:
    """The container env as KServe assembles it: the rendered runtime's variables, then the
    ones KServe sets for an MLServer-style runtime (model name, URI, implementation)."""
    values = load_values(
        None, {}, {"image": tag, "model_name": MODEL, "name": "linear", "drain_delay": 8}
    )
    runtime, _ = render_manifests(values, "kserve")
    env = {item["name"]: item["value"] for item in runtime["spec"]["containers"][0]["env"]}
    env.update(
        {
            "MLSERVER_MODEL_IMPLEMENTATION": "models.LinearModel",
            "MLSERVER_MODEL_NAME": MODEL,
            "MLSERVER_MODEL_URI": "/mnt/models",
            "MLSERVER_HTTP_PORT": "8080",
            "MLSERVER_GRPC_PORT": "9000",
            "MLPACK_ACCESS_LOG": "true",
        }
    )
    return env


class Replica:
    """One container started like the pod's: its host ports and its name."""

    def __init__(self, tag: str, mounted: Path) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        self.name = f"mlpack-kserve-{uuid.uuid4().hex[:8]}"
        env_args = [
            arg
            for key, value in kserve_environment(tag).items()
            for arg in ("-e", f"{key}={value}")
        ]
        _docker(
            "run",
            "-d",
            "--name",
            self.name,
            "--user",
            "12345:0",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=64m",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "-v",
            f"{mounted}:/mnt/models:ro",
            "-p",
            f"127.0.0.1:{self.http}:8080",
            "-p",
            f"127.0.0.1:{self.grpc}:9000",
            "-p",
            f"127.0.0.1:{self.metrics}:8082",
            *env_args,
            tag,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def wait_ready(self) -> None:
        for _ in range(600):
            if not self.running():
                break
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} never became ready:\n{self.logs()}")

    def running(self) -> bool:
        state = _docker(
            "inspect", "-f", "{{.State.Running}}", self.name, check=False
        ).stdout.strip()
        return state == "true"

    def exit_code(self) -> int:
        return int(_docker("inspect", "-f", "{{.State.ExitCode}}", self.name).stdout.strip())

    def wait_exit(self) -> int:
        _docker("wait", self.name, timeout=120)
        return self.exit_code()

    def logs(self) -> str:
        result = _docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def served(self) -> int:
        """Successful inference requests in this replica's access log."""
        return sum(
            1
            for line in self.logs().splitlines()
            if f"POST /v2/models/{MODEL}/infer" in line and '" 200' in line
        )

    def remove(self) -> None:
        _docker("rm", "-f", self.name, check=False)


@pytest.fixture
def start_replica(image: str, mounted_model: Path) -> Iterator[Any]:
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica(image, mounted_model)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.remove()


GRPC_CLIENT = r"""
import json, os, sys
import numpy as np
import tritonclient.grpc as grpcclient
address, model, stop_file, mode = sys.argv[1:5]
client = grpcclient.InferenceServerClient(address)
x = grpcclient.InferInput("x", [1, 3], "FP64")
x.set_data_from_numpy(np.array([[1.0, 2.0, 3.0]]))
ok, failed, stopped_by = 0, [], "limit"
for _ in range(100000):
    if os.path.exists(stop_file):
        stopped_by = "stop-file"; break
    if mode == "follow-readiness" and not client.is_server_ready():
        stopped_by = "not-ready"; break
    try:
        result = client.infer(model, [x]).as_numpy("score").reshape(-1)
        ok += 1
        if ok == 20:
            open(stop_file + ".started", "w").close()
        if mode == "once":
            print(json.dumps({"ok": ok, "failed": failed, "score": result.tolist(),
                              "live": client.is_server_live(),
                              "ready": client.is_model_ready(model)}))
            sys.exit(0)
    except Exception as error:
        failed.append(repr(error)[:300])
print(json.dumps({"ok": ok, "failed": failed, "stopped_by": stopped_by}))
"""


def grpc_client(address: str, mode: str, stop_file: Path) -> subprocess.Popen[str]:
    """tritonclient in its own process (its protobufs never meet mlpack's)."""
    return subprocess.Popen(
        [sys.executable, "-c", GRPC_CLIENT, address, MODEL, str(stop_file), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class RestLoad:
    """Client threads sending inference requests in a loop, each result recorded.

    ``routed`` plays the part of the endpoints controller: threads send only while it is set.
    """

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.routed = threading.Event()
        self.routed.set()
        self.stop = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for _ in range(200000):
                if self.stop.is_set() or not self.routed.is_set():
                    return
                try:
                    response = client.post(f"/v2/models/{MODEL}/infer", json=BODY)
                    good = response.status_code == 200 and response.json()["outputs"][0][
                        "data"
                    ] == [EXPECTED]
                    problem = "" if good else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as error:
                    problem = repr(error)
                with self._lock:
                    if problem:
                        self.failed.append(problem)
                    else:
                        self.ok += 1

    def start(self) -> RestLoad:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, count: int) -> None:
        """Until ``count`` more requests have succeeded (or something failed)."""
        target = self.ok + count
        for _ in range(100000):
            if self.ok >= target or self.failed or not any(t.is_alive() for t in self._threads):
                return
            time.sleep(0.01)

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(120)


def test_kserve_container_contract_and_sigterm_drain(start_replica: Any, tmp_path: Path) -> None:
    replica = start_replica()
    replica.wait_ready()
    # -- the contract: env-only config, the mounted model, identity, health, REST and gRPC
    assert _docker("exec", replica.name, "id", "-u").stdout.strip() == "12345"
    assert _docker("exec", replica.name, "id", "-g").stdout.strip() == "0"
    assert httpx.get(f"{replica.url}/v2/health/live").status_code == 200
    response = httpx.post(f"{replica.url}/v2/models/{MODEL}/infer", json=BODY, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [
        EXPECTED
    ]  # the mounted weights, not the image's
    once = grpc_client(f"127.0.0.1:{replica.grpc}", "once", tmp_path / "never")
    out, err = once.communicate(timeout=120)
    assert once.returncode == 0, err
    result = json.loads(out)
    assert result["score"] == [EXPECTED] and result["live"] and result["ready"]
    log = replica.logs()
    assert "MLSERVER_MODEL_URI used as MLPACK_MODEL_URI" in log
    assert f"serving model '{MODEL}' (models.LinearModel) described by the environment" in log

    # -- SIGTERM under steady REST + gRPC load: readiness goes false, serving continues
    load = RestLoad(replica.url).start()
    grpc_load = grpc_client(f"127.0.0.1:{replica.grpc}", "follow-readiness", tmp_path / "stop")
    load.wait_for(50)
    for _ in range(3000):  # the gRPC client is under way too
        if (tmp_path / "stop.started").exists() or grpc_load.poll() is not None:
            break
        load.wait_for(1)
    assert (tmp_path / "stop.started").exists(), grpc_load.communicate()
    _docker("kill", "--signal", "TERM", replica.name)
    with httpx.Client(timeout=10) as probe:  # the kubelet's readiness probe
        statuses = []
        for _ in range(2000):
            statuses.append(probe.get(f"{replica.url}/v2/health/ready").status_code)
            if statuses[-1] == 503:
                break
    served_after_sigterm = load.ok
    load.wait_for(10)  # still served while not ready (the drain delay)
    served_after_sigterm = load.ok - served_after_sigterm
    load.routed.clear()  # endpoints controller: the pod is out of the Service
    load.join()
    out, err = grpc_load.communicate(timeout=300)
    grpc_result = json.loads(out)
    exit_code = replica.wait_exit()
    log = replica.logs()
    print(
        f"\nREST ok {load.ok} (after SIGTERM {served_after_sigterm}), gRPC ok {grpc_result['ok']}"
    )
    assert statuses[-1] == 503, statuses[-20:]
    assert load.failed == [], load.failed[:5]
    assert grpc_result["failed"] == [] and grpc_result["ok"] > 0, grpc_result
    assert grpc_result["stopped_by"] == "not-ready"  # gRPC ServerReady went false too
    assert served_after_sigterm >= 10
    assert exit_code == 0, log[-3000:]
    assert "draining: readiness is false" in log and "stopped" in log
    assert "Traceback" not in log
    # Server-side count: every request a client saw succeed was logged as served.
    assert replica.served() == load.ok + 1


HAPROXY_CONFIG = """
global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # No L7 retries: a request HAProxy sent to a replica is answered by that replica.
    retry-on none
frontend models
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    default-server inter 300ms fall 1 rise 2
{servers}
"""


def test_two_replicas_behind_haproxy_lose_nothing_when_one_stops(
    start_replica: Any, tmp_path: Path
) -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("haproxy is not installed (.ci/run installs Debian's package)")
    first, second = start_replica(), start_replica()
    first.wait_ready()
    second.wait_ready()
    (port,) = free_ports(1)
    servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.http} check" for r in (first, second))
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, servers=servers))
    check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with open(tmp_path / "haproxy.log", "wb") as proxy_log:
        proxy = subprocess.Popen(
            [haproxy, "-db", "-f", str(config)], stdout=proxy_log, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # both servers up in HAProxy's view (rise 2)
            try:
                ok = (
                    httpx.post(f"{url}/v2/models/{MODEL}/infer", json=BODY, timeout=10).status_code
                    == 200
                )
            except httpx.TransportError:
                ok = False
            if ok and first.served() > 0 and second.served() > 0:
                break
            time.sleep(0.1)
        warmup = first.served() + second.served()
        load = RestLoad(url, threads=4).start()
        load.wait_for(100)
        _docker("kill", "--signal", "TERM", first.name)
        for _ in range(10000):  # keep the load on until the stopped replica has exited
            if not first.running() or load.failed:
                break
            load.wait_for(10)
        load.wait_for(100)  # and then some, all on the remaining replica
        load.join()
        assert first.wait_exit() == 0, first.logs()[-3000:]
        assert second.running()
    finally:
        proxy.terminate()
        proxy.wait(30)
    served = (first.served(), second.served())
    print(f"\nthrough HAProxy: ok {load.ok}; replicas served {served}")
    assert load.failed == [], load.failed[:5]
    assert load.ok >= 200
    # Server-side: the two access logs account for every success the clients saw.
    assert first.served() + second.served() == warmup + load.ok
    assert "draining: readiness is false" in first.logs()
    assert "Traceback" not in first.logs() + second.logs()
