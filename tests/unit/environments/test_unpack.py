"""Per-model environments: safe unpacking, once, atomically; corrupted ones detected."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from mlpack.environments import (
    MARKER,
    InvalidEnvironment,
    check_python_version,
    file_digest,
    resolve_environment,
    unpack_environment,
    verify_environment,
)


def _tarball(
    path: Path, members: list[tarfile.TarInfo], payloads: dict[str, bytes] | None = None
) -> Path:
    payloads = payloads or {}
    with tarfile.open(path, "w:gz") as archive:
        for info in members:
            data = payloads.get(info.name)
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _env_tarball(path: Path, extra: bytes = b"") -> Path:
    """A minimal environment whose bin/python is a link to this interpreter... via a script."""
    script = f'#!/bin/sh\nexec {sys.executable} "$@"\n'.encode()
    return _tarball(
        path,
        [_file("bin/python", 0o755), _file("lib/data.txt"), _link("bin/python3", "python")],
        {"bin/python": script, "lib/data.txt": b"hello" + extra},
    )


def test_unpacks_once_and_reuses(tmp_path: Path) -> None:
    tarball = _env_tarball(tmp_path / "env.tar.gz")
    envs = tmp_path / "envs"
    first = unpack_environment(tarball, envs)
    assert first.root == envs / file_digest(tarball)[:32]
    assert (first.root / MARKER).is_file()
    assert (first.root / "lib/data.txt").read_bytes() == b"hello"
    marker_time = (first.root / MARKER).stat().st_mtime_ns
    second = unpack_environment(tarball, envs)
    assert second == first
    assert (first.root / MARKER).stat().st_mtime_ns == marker_time  # not unpacked again
    assert not [p for p in envs.iterdir() if p.name.startswith(".tmp-")]


def test_resolve_checks_python_and_relative_paths(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    _env_tarball(model / "env.tar.gz")
    environment = resolve_environment("env.tar.gz", None, model, tmp_path / "envs")
    assert environment is not None and environment.python.name == "python"
    assert resolve_environment(None, None, model, tmp_path / "envs") is None
    same = resolve_environment(None, str(environment.root), model, tmp_path / "other")
    assert same is not None and same.root == environment.root


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_file("/etc/evil"), "absolute path"),
        (_file("lib/../../evil"), "leaves the environment"),
        (_link("bin/escape", "/usr/bin/python3"), "absolute path"),
        (_link("bin/escape", "../../outside"), "links outside"),
        (_link("lib/hard", "../outside", hard=True), "links outside"),
    ],
)
def test_refuses_unsafe_members(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    tarball = _tarball(tmp_path / "bad.tar.gz", [_file("bin/python"), member])
    envs = tmp_path / "envs"
    with pytest.raises(InvalidEnvironment, match=message):
        unpack_environment(tarball, envs)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()
    assert [p.name for p in envs.iterdir() if not p.name.endswith(".lock")] == []


def test_links_inside_the_environment_are_fine(tmp_path: Path) -> None:
    tarball = _tarball(
        tmp_path / "ok.tar.gz",
        [_file("bin/python", 0o755), _link("lib64", "lib"), _link("bin/py", "../bin/python")],
        {"bin/python": b"#!/bin/sh\n"},
    )
    root = unpack_environment(tarball, tmp_path / "envs").root
    assert (root / "lib64").is_symlink()


def test_not_a_tarball(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(InvalidEnvironment, match="not a readable tarball"):
        unpack_environment(junk, tmp_path / "envs")


def test_half_unpacked_environment_is_detected_and_redone(tmp_path: Path) -> None:
    tarball = _env_tarball(tmp_path / "env.tar.gz")
    envs = tmp_path / "envs"
    root = unpack_environment(tarball, envs).root
    (root / MARKER).unlink()  # as if the process died before finishing
    (root / "lib/data.txt").unlink()
    assert verify_environment(root, file_digest(tarball)) == "no completion marker: half-unpacked"
    again = unpack_environment(tarball, envs).root
    assert (again / "lib/data.txt").read_bytes() == b"hello"
    assert verify_environment(again, file_digest(tarball)) is None


def test_corrupted_environment_is_detected_and_redone(tmp_path: Path) -> None:
    tarball = _env_tarball(tmp_path / "env.tar.gz")
    envs = tmp_path / "envs"
    root = unpack_environment(tarball, envs).root
    (root / "lib/data.txt").write_bytes(b"truncat")
    assert verify_environment(root, file_digest(tarball)) == "lib/data.txt changed size"
    (root / "lib/data.txt").unlink()
    assert verify_environment(root, file_digest(tarball)) == "lib/data.txt is missing"
    marker = json.loads((root / MARKER).read_text())
    marker["sha256"] = "0" * 64
    (root / MARKER).write_text(json.dumps(marker))
    assert "another tarball" in (verify_environment(root, file_digest(tarball)) or "")
    assert (unpack_environment(tarball, envs).root / "lib/data.txt").read_bytes() == b"hello"


def test_python_minor_version_mismatch_is_clear(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 3.7\n")
    fake.chmod(0o755)
    with pytest.raises(InvalidEnvironment, match=r"is 3\.7, but the server runs Python 3\.\d+"):
        check_python_version(fake)


def test_missing_tarball_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidEnvironment, match="no such file"):
        resolve_environment("nope.tar.gz", None, tmp_path, tmp_path / "envs")
    with pytest.raises(InvalidEnvironment, match="not a folder"):
        resolve_environment(None, "nope", tmp_path, tmp_path / "envs")


def test_unpacks_into_a_named_folder(tmp_path: Path) -> None:
    tarball = _env_tarball(tmp_path / "env.tar.gz")
    envs = tmp_path / "envs"
    environment = unpack_environment(tarball, envs, "table_old")
    assert environment.root == envs / "table_old" and environment.python.is_file()
    assert verify_environment(environment.root, file_digest(tarball)) is None
    assert unpack_environment(tarball, envs, "table_old").root == envs / "table_old"
    for bad in ("", "..", "a/b"):
        with pytest.raises(InvalidEnvironment, match="one path component"):
            unpack_environment(tarball, envs, bad)
