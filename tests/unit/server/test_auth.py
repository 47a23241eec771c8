"""The access policy: scopes, keys, the control-plane switch, header forms."""

from __future__ import annotations

import pytest

from mlpack.errors import InvalidSettings, PermissionDenied, Unauthenticated
from mlpack.server.auth import AccessPolicy, grpc_scope, rest_scope
from mlpack.settings import Settings


def test_scopes_default_to_the_data_plane() -> None:
    assert rest_scope("/v2/health/ready") == ("open", False)
    assert rest_scope("/v2/repository/index") == ("control", False)
    assert rest_scope("/v2/repository/models/m/unload") == ("control", True)
    assert rest_scope("/v2/some/future/route") == ("data", False)
    assert grpc_scope("/grpc.health.v1.Health/Watch") == ("open", False)
    assert grpc_scope("/inference.GRPCInferenceService/RepositoryModelLoad") == ("control", True)
    assert grpc_scope("/inference.GRPCInferenceService/SomethingNew") == ("data", False)


def test_keys_and_scopes() -> None:
    policy = AccessPolicy(["d"], ["c"])
    assert policy.enabled and policy.active
    policy.check("data", False, "d")
    policy.check("data", False, "c")  # a control key opens the data plane too
    policy.check("control", True, "c")
    with pytest.raises(Unauthenticated, match="authentication required"):
        policy.check("data", False, None)
    with pytest.raises(Unauthenticated, match="not valid"):
        policy.check("data", False, "x")
    with pytest.raises(PermissionDenied, match="control-plane key"):
        policy.check("control", False, "d")
    policy.check("open", False, None)


def test_control_plane_switch_without_keys() -> None:
    read_only = AccessPolicy(control_plane="read_only")
    assert read_only.active and not read_only.enabled
    read_only.check("control", False, None)
    with pytest.raises(PermissionDenied, match="read-only"):
        read_only.check("control", True, None)
    with pytest.raises(PermissionDenied, match="switched off"):
        AccessPolicy(control_plane="off").check("control", False, None)
    assert not AccessPolicy().active


def test_header_forms() -> None:
    bearer = AccessPolicy(["k"])
    assert bearer.credential("Bearer k") == "k"
    assert bearer.credential("bearer  k ") == "k"
    assert bearer.credential("Basic k") == ""
    custom = AccessPolicy(["k"], header="X-API-Key")
    assert custom.header == "x-api-key" and custom.credential(" k") == "k"


def test_keys_from_settings_and_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys"
    keys.write_text("# comment\nfile-key\n\n")
    settings = Settings.model_validate(
        {"auth": {"data_plane_tokens": ["inline"], "control_plane_tokens_file": str(keys)}}
    )
    policy = AccessPolicy.from_settings(settings)
    policy.check("control", True, "file-key")
    policy.check("data", False, "inline")
    missing = Settings.model_validate({"auth": {"data_plane_tokens_file": str(tmp_path / "nope")}})
    with pytest.raises(InvalidSettings, match="cannot read API keys"):
        AccessPolicy.from_settings(missing)


def test_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPACK_AUTH__DATA_PLANE_TOKENS", '["env-key"]')
    policy = AccessPolicy.from_settings(Settings.resolve())
    policy.check("data", False, "env-key")
