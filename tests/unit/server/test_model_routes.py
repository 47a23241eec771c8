"""Runtime-declared REST routes: which models serve them, and the settings errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlpack.errors import InvalidSettings
from mlpack.server.auth import rest_scope
from mlpack.server.model_routes import model_route_paths, resolve_model_routes
from mlpack.settings import ModelSettings

MODELS = textwrap.dedent("""
    from mlpack.model import MLModel
    from mlpack.model_routes import ModelRoute


    class Echo(ModelRoute):
        path = "/echo"
        summary = "Echo"


    class Inside(ModelRoute):
        path = "/v2/mine"


    class WithRoute(MLModel):
        rest_routes = (Echo(),)


    class WithV2Route(MLModel):
        rest_routes = (Inside(),)


    class Plain(MLModel):
        pass
""")


def _models(tmp_path: Path, **implementations: str) -> list[ModelSettings]:
    folder = tmp_path / "code"
    folder.mkdir(exist_ok=True)
    (folder / "models.py").write_text(MODELS)
    return [
        ModelSettings(name=name, implementation=f"models.{cls}", folder=str(folder))
        for name, cls in implementations.items()
    ]


def test_only_named_models_serve_their_routes(tmp_path: Path) -> None:
    models = _models(tmp_path, a="WithRoute", b="WithRoute", c="Plain")
    assert resolve_model_routes(models, []) == []
    [served] = resolve_model_routes(models, ["b", "b"])
    assert (served.model_name, served.route.path) == ("b", "/echo")
    paths = model_route_paths([served])
    assert list(paths) == ["b"] and paths["b"]["/echo"]["post"]["summary"] == "Echo for model 'b'"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["x"], "names model 'x', which is not among the models found"),
        (["c"], r"declares no REST routes"),
        (["a", "b"], "/echo is declared by both 'a' and 'b'"),
        (["v"], "must start with '/' and stay outside /v2"),
    ],
)
def test_settings_that_cannot_be_served_fail_at_startup(
    tmp_path: Path, names: list[str], message: str
) -> None:
    models = _models(tmp_path, a="WithRoute", b="WithRoute", c="Plain", v="WithV2Route")
    with pytest.raises(InvalidSettings, match=message):
        resolve_model_routes(models, names)


def test_an_unimportable_runtime_is_a_settings_error(tmp_path: Path) -> None:
    models = [ModelSettings(name="m", implementation="no_such_module.Model")]
    with pytest.raises(InvalidSettings, match=r"model_routes: model 'm': .*not found"):
        resolve_model_routes(models, ["m"])


def test_runtime_routes_are_data_plane_routes() -> None:
    assert rest_scope("/invocations") == ("data", False)
