"""`mlpack infer` outputs and checkpoints stay out of image build contexts."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from mlpack import scaffold
from mlpack.packaging.image import write_context
from mlpack.packaging.plan import plan_image

INFER_LEFTOVERS = [
    "responses.jsonl",
    "responses.checkpoint.json",
    "responses.errors.jsonl",
    "batch/scores.jsonl.checkpoint.json",
    "batch/scores.checkpoint.json",
    "batch/scores.errors.jsonl",
]


def _context_names(folder: Path, tmp_path: Path) -> set[str]:
    staging = tmp_path / "staging"
    staging.mkdir()
    stream = io.BytesIO()
    write_context(plan_image(folder), staging, "FROM scratch\n", stream)
    stream.seek(0)
    with tarfile.open(fileobj=stream) as archive:
        return set(archive.getnames())


@pytest.mark.parametrize("dockerignore", ["generated project", "rendered by mlpack build"])
def test_infer_outputs_are_not_sent_to_the_engine(dockerignore: str, tmp_path: Path) -> None:
    project = tmp_path / "p"
    files = scaffold.render_project(scaffold.ProjectOptions(template="custom", name="p"))
    scaffold.write_project(project, files)
    if dockerignore != "generated project":
        (project / ".dockerignore").unlink()
    for leftover in INFER_LEFTOVERS:
        (project / leftover).parent.mkdir(parents=True, exist_ok=True)
        (project / leftover).write_text("{}\n")
    names = _context_names(project, tmp_path)
    assert "models/models.py" in names and "models/model-settings.json" in names
    leaked = [name for name in names if name.removeprefix("models/") in INFER_LEFTOVERS]
    assert leaked == []
    shutil.rmtree(project)
