"""Server start/stop helpers, against a tiny stand-in server with a child process."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from benchmarks import servers

_FAKE_SERVER = textwrap.dedent(
    """
    import http.server, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/v2/health/ready" else 404
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
        def log_message(self, *args):
            pass
    print("child", child.pid, flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_free_ports_are_distinct() -> None:
    ports = servers.free_ports(3)
    assert len(set(ports)) == 3


def test_spawn_measures_and_stop_kills_the_tree() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-test-"))
    ports = servers.free_ports(3)
    argv = [sys.executable, "-c", _FAKE_SERVER, str(ports[0])]
    server = servers.spawn("fake", argv, workdir, ports, ready_timeout=20, settle=0)
    try:
        tree = servers.process_tree(server.proc.pid)
        assert len(tree) == 2  # the server and its child
        assert server.start_s > 0
        assert server.idle_rss_mib > 5  # two Python interpreters
        assert 0 < server.idle_pss_mib <= server.idle_rss_mib
        assert servers.tree_cpu_seconds(server.proc.pid) >= 0
        assert os.getpgid(server.proc.pid) == server.proc.pid  # own process group
    finally:
        server.stop(timeout=5)
    assert not any(_alive(pid) for pid in tree)
    assert not workdir.exists()


def test_spawn_reports_early_exit() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-test-"))
    argv = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match="exited with code 3"):
        servers.spawn("broken", argv, workdir, servers.free_ports(3), ready_timeout=20)
