"""The extractor refuses every hostile tarball of the corpus and writes nothing outside."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from mlpack.environments import (
    ExtractionLimits,
    InvalidEnvironment,
    extract_tarball,
    unpack_environment,
)
from tests.helpers.hostile_archives import CORPUS, build_corpus, long_path_chain, snapshot


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    outside = root / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    return outside, build_corpus(root / "tarballs", outside)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_tarball_is_refused_and_nothing_is_written_outside(
    case: str, corpus: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    outside, tarballs = corpus
    before_outside = snapshot(outside)
    before = snapshot(tmp_path)
    envs = tmp_path / "envs"
    with pytest.raises(InvalidEnvironment) as refused:
        unpack_environment(tarballs[case], envs)
    assert CORPUS[case][1] in str(refused.value)
    assert "refused" in str(refused.value) or "members" in str(refused.value)
    assert snapshot(outside) == before_outside
    assert (outside / "victim.txt").read_text() == "keep me"
    # Only the lock file remains: the staging folder is gone, nothing else appeared.
    assert snapshot(tmp_path) - before == {"envs", f"envs/.{_folder(tarballs[case])}.lock"}


def _folder(tarball: Path) -> str:
    from mlpack.environments import file_digest

    return file_digest(tarball)[:32]


def test_long_path_chain_is_refused_by_resolution_even_without_the_length_limit(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tarball = long_path_chain(tmp_path / "chain.tar.gz", outside)
    destination = tmp_path / "dest"
    destination.mkdir()
    with pytest.raises(InvalidEnvironment, match="below the symlink"):
        extract_tarball(tarball, destination, ExtractionLimits(max_path_length=100_000))
    assert not any(destination.iterdir()) and not any(outside.iterdir())


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def test_a_normal_environment_extracts_with_links_inside_and_modes_masked(tmp_path: Path) -> None:
    tarball = _tar(
        tmp_path / "ok.tar.gz",
        [
            (_member("./", tarfile.DIRTYPE, 0o777), None),
            (_member("bin/python", mode=0o777), b"#!/bin/sh\n"),
            (_member("lib64", tarfile.SYMTYPE, link="lib"), None),
            (_member("lib/a/b.py"), b"x = 1\n"),
            (_member("lib/a/c.py", tarfile.LNKTYPE, link="lib/a/b.py"), None),
            (_member("lib/a/up", tarfile.SYMTYPE, link="../../bin/python"), None),
            (_member("lib/a/chain", tarfile.SYMTYPE, link="../../lib64/a/b.py"), None),
        ],
    )
    destination = tmp_path / "dest"
    destination.mkdir()
    extract_tarball(tarball, destination)
    assert (destination / "lib64/a/chain").read_text() == "x = 1\n"
    assert os.path.samefile(destination / "lib/a/c.py", destination / "lib/a/b.py")
    mode = stat.S_IMODE((destination / "bin/python").stat().st_mode)
    assert mode == 0o755  # group/other write dropped


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ([("l", tarfile.SYMTYPE, "/etc")], "symlink to the absolute path"),
        (
            [("a", tarfile.SYMTYPE, "b/.."), ("b", tarfile.SYMTYPE, "..")],
            "links outside the environment",
        ),
        ([("a", tarfile.SYMTYPE, "b"), ("b", tarfile.SYMTYPE, "a")], "too many symlinks"),
        ([("a", tarfile.SYMTYPE, "a/x")], "too many symlinks"),
        ([("x", tarfile.REGTYPE, ""), ("x/y", tarfile.REGTYPE, "")], "below the file 'x'"),
        ([("x", tarfile.REGTYPE, ""), ("x", tarfile.SYMTYPE, "y")], "appears twice"),
        ([("h", tarfile.LNKTYPE, "missing")], "not a regular file before it"),
    ],
)
def test_link_rules(members: list[tuple[str, bytes, str]], words: str, tmp_path: Path) -> None:
    tarball = _tar(
        tmp_path / "t.tar.gz",
        [
            (_member(name, kind, link=link), b"" if kind == tarfile.REGTYPE else None)
            for name, kind, link in members
        ],
    )
    destination = tmp_path / "dest"
    destination.mkdir()
    with pytest.raises(InvalidEnvironment, match=words.replace("(", r"\(")):
        extract_tarball(tarball, destination)
    assert not any(destination.iterdir())


def test_a_corrupt_tarball_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b" + b"nonsense" * 10)
    destination = tmp_path / "dest"
    destination.mkdir()
    with pytest.raises(InvalidEnvironment, match=r"not a readable tarball|corrupt"):
        extract_tarball(broken, destination)
