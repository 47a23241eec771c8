"""Response ids: valid, distinct version-4 UUIDs; a forked child does not repeat its parent."""

from __future__ import annotations

import os
import uuid

from mlpack.engine.ids import new_id


def test_ids_are_canonical_version_4_uuids() -> None:
    for _ in range(200):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_forked_child_draws_its_own_sequence() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids, then leave without running the test teardown
        os.close(read)
        os.write(write, " ".join(new_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = set(pipe.read().decode().split())
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(5)}
    assert len(child) == 5
    assert not child & parent
