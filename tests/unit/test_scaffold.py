"""``mlpack.scaffold``: templates are listed, rendered and written without the CLI."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from mlpack import scaffold
from mlpack.templating import template_root

TEMPLATES = [
    "custom",
    "sklearn",
    "xgboost",
    "lightgbm",
    "onnx",
    "mlflow",
    "huggingface",
    "stream",
]
EVERY_PROJECT_HAS = {
    "model-settings.json",
    "requirements.txt",
    "README.md",
    ".dockerignore",
    "tests/test_model.py",
    "request.json",
    "requests.jsonl",
    "pytest.ini",
}


def test_template_root_is_the_repositorys_templates_folder() -> None:
    assert (template_root() / "init" / "custom" / "template.json").is_file()


def test_list_templates_custom_first_with_descriptions() -> None:
    templates = scaffold.list_templates()
    assert [t.name for t in templates] == [
        "custom",
        "huggingface",
        "lightgbm",
        "mlflow",
        "onnx",
        "sklearn",
        "stream",
        "xgboost",
    ]
    assert all(t.description and t.request and t.answer for t in templates)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("batching", [False, True])
def test_render_every_template(template: str, batching: bool) -> None:
    files = scaffold.render_project(
        scaffold.ProjectOptions(template=template, name="churn", batching=batching)
    )
    assert set(files) >= EVERY_PROJECT_HAS
    assert ("models.py" in files) == (template in ("custom", "stream"))
    assert ("train.py" in files) == (template not in ("custom", "stream"))
    settings = json.loads(files["model-settings.json"])
    assert settings["name"] == "churn"
    assert ("max_batch_size" in settings) == batching
    if batching:
        assert settings["max_batch_size"] == scaffold.DEFAULT_MAX_BATCH_SIZE
    for path, content in files.items():
        if path.endswith(".py"):
            ast.parse(content, filename=path)
        assert "{{" not in content and "{%" not in content, path
    readme = files["README.md"]
    assert "mlpack start ." in readme and "mlpack build . -t churn" in readme
    assert "mlpack infer -u localhost:8080 -m churn" in readme
    assert "/v2/models/churn/infer" in readme
    request = json.loads(files["request.json"])
    assert [json.loads(line) for line in files["requests.jsonl"].splitlines()] == [request, request]


def test_runtime_templates_name_their_runtime() -> None:
    implementations = {
        t: json.loads(
            scaffold.render_project(scaffold.ProjectOptions(template=t))["model-settings.json"]
        )["implementation"]
        for t in TEMPLATES
    }
    assert implementations == {
        "custom": "models.Model",
        "sklearn": "mlpack_sklearn.SKLearnModel",
        "xgboost": "mlpack_xgboost.XGBoostModel",
        "lightgbm": "mlpack_lightgbm.LightGBMModel",
        "onnx": "mlpack_onnx.OnnxModel",
        "mlflow": "mlpack_mlflow.MLflowModel",
        "huggingface": "mlpack_huggingface.HuggingFaceModel",
        "stream": "models.Model",
    }


def test_unknown_template_and_bad_name() -> None:
    with pytest.raises(
        scaffold.ScaffoldError, match=r"unknown template 'nope' \(available: custom, "
    ):
        scaffold.render_project(scaffold.ProjectOptions(template="nope"))
    with pytest.raises(scaffold.ScaffoldError, match="model name 'a b'"):
        scaffold.render_project(scaffold.ProjectOptions(name="a b"))


def test_default_name_from_folder(tmp_path: Path) -> None:
    assert scaffold.default_name(tmp_path / "My Model!") == "my-model"
    assert scaffold.default_name(tmp_path / "churn_v2") == "churn_v2"
    assert scaffold.default_name(tmp_path / "!!!") == scaffold.DEFAULT_NAME


def test_write_project_refuses_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    files = {"a.txt": "new", "sub/b.txt": "b"}
    written = scaffold.write_project(tmp_path / "new", files)
    assert sorted(p.relative_to(tmp_path / "new").as_posix() for p in written) == [
        "a.txt",
        "sub/b.txt",
    ]
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(scaffold.ScaffoldError, match=r"is not empty; .* --force"):
        scaffold.write_project(tmp_path / "used", files)
    scaffold.write_project(tmp_path / "used", files, force=True)
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "used" / "a.txt").read_text() == "new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(scaffold.ScaffoldError, match="not a folder"):
        scaffold.write_project(tmp_path / "file", files)
