"""``mlpack.compat``: MLServer's import names, never shadowing a real MLServer."""

from __future__ import annotations

import importlib
import inspect
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpack.compat import (
    RUNTIME_PACKAGES,
    MLServerCompatFinder,
    install_mlserver_compat,
    real_mlserver_installed,
    uninstall_mlserver_compat,
)
from mlpack.settings import ModelParameters, ModelSettings


@pytest.fixture(autouse=True)
def clean_compat() -> Iterator[None]:
    uninstall_mlserver_compat()
    yield
    uninstall_mlserver_compat()


def test_mlserver_names_resolve_to_mlpack() -> None:
    assert install_mlserver_compat({})
    import mlserver
    from mlserver import MLModel, types
    from mlserver.codecs import NumpyCodec, PandasCodec, decode_args
    from mlserver.codecs.numpy import NumpyRequestCodec
    from mlserver.errors import MLServerError
    from mlserver.settings import ModelSettings as CompatModelSettings

    import mlpack
    import mlpack.codecs

    assert MLModel is mlpack.MLModel
    assert types.InferenceRequest is mlpack.types.InferenceRequest
    assert (
        NumpyCodec is mlpack.codecs.NumpyCodec
        and NumpyRequestCodec is mlpack.codecs.NumpyRequestCodec
    )
    assert decode_args is mlpack.codecs.decode_args and PandasCodec.ContentType == "pd"
    assert CompatModelSettings is ModelSettings
    assert issubclass(MLServerError, mlpack.errors.MLPackError)
    assert mlserver.__file__ and "_shims" in mlserver.__file__


def test_runtime_names_alias_mlpack_runtimes_with_awaitable_methods() -> None:
    install_mlserver_compat({})
    from mlserver_sklearn import SKLearnModel

    import mlpack_sklearn

    assert issubclass(SKLearnModel, mlpack_sklearn.SKLearnModel)
    assert inspect.iscoroutinefunction(SKLearnModel.predict)  # `await super().predict(...)` works
    assert inspect.iscoroutinefunction(SKLearnModel.load)


def test_missing_replacement_runtime_is_a_plain_import_error() -> None:
    install_mlserver_compat({})
    assert RUNTIME_PACKAGES["mlserver_mlflow"] == "mlpack_mlflow"
    if importlib.util.find_spec("mlpack_mlflow") is None:
        with pytest.raises(ModuleNotFoundError, match="mlserver_mlflow"):
            importlib.import_module("mlserver_mlflow")


def test_turned_off_installs_nothing() -> None:
    assert not install_mlserver_compat({"MLPACK_MLSERVER_COMPAT": "0"})
    assert not any(isinstance(f, MLServerCompatFinder) for f in sys.meta_path)
    with pytest.raises(ModuleNotFoundError, match="'mlserver'"):
        importlib.import_module("mlserver")


def test_a_real_mlserver_installation_is_never_shadowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "site" / "mlserver"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    (real / "codecs.py").write_text("REAL_CODECS = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    install_mlserver_compat({})
    assert sys.meta_path[-1].__class__ is MLServerCompatFinder  # consulted last
    try:
        import mlserver
        import mlserver.codecs

        assert mlserver.REAL and mlserver.codecs.REAL_CODECS
        assert real_mlserver_installed()
        # With MLServer installed, its runtime names are not aliased to mlpack's either.
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("mlserver_sklearn")
    finally:
        for name in ("mlserver", "mlserver.codecs"):
            sys.modules.pop(name, None)


def test_errors_keep_statuses_and_pickle() -> None:
    install_mlserver_compat({})
    from mlserver.errors import InferenceError, InvalidModelURI, MLServerError, ModelNotFound

    for error, status in [
        (MLServerError("x"), 400),
        (MLServerError("x", status_code=418), 418),
        (InferenceError("bad"), 400),
        (ModelNotFound("m", "2"), 404),
        (InvalidModelURI("m", "/x"), 422),
    ]:
        assert error.status == status and error.status_code == status
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy.message == error.message and copy.status == status


async def test_get_model_uri_as_in_mlserver(tmp_path: Path) -> None:
    install_mlserver_compat({})
    from mlserver.errors import InvalidModelURI
    from mlserver.utils import get_model_uri

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.joblib").write_bytes(b"x")

    def settings(uri: str | None) -> ModelSettings:
        return ModelSettings(
            name="m",
            implementation="a.B",
            folder=str(tmp_path),
            parameters=ModelParameters(uri=uri),
        )

    assert await get_model_uri(settings("./m"), wellknown_filenames=["model.joblib"]) == str(
        tmp_path / "m" / "model.joblib"
    )
    assert await get_model_uri(settings("./m")) == str(tmp_path / "m")
    assert await get_model_uri(settings(str(tmp_path / "m" / "model.joblib"))) == str(
        tmp_path / "m" / "model.joblib"
    )
    assert await get_model_uri(settings("s3://bucket/model")) == "s3://bucket/model"
    with pytest.raises(InvalidModelURI):
        await get_model_uri(settings(None))
    with pytest.raises(InvalidModelURI, match="nope"):
        await get_model_uri(settings("./nope"))
