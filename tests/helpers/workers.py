"""Worker entry points for pool tests (module-level, so ``spawn`` can import them)."""

from __future__ import annotations

import os
import socket

from mlpack.engine.workers.worker import run_worker

# While this file exists, new workers exit at once (a crash-looping environment).
CRASH_FLAG = "MLPACK_TEST_CRASH_FLAG"


def crash_while_flagged(sock: socket.socket, worker_id: int) -> None:
    flag = os.environ.get(CRASH_FLAG)
    if flag and os.path.exists(flag):
        os._exit(3)
    run_worker(sock, worker_id)
