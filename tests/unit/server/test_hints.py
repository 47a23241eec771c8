"""The ``ready: try curl`` line matches how the server is reached (TLS, API keys)."""

from __future__ import annotations

from pathlib import Path

from mlpack.engine.registry import ModelEntry, State
from mlpack.server.hints import TLSHint, ready_hint
from mlpack.settings import ModelSettings


def _ready_entry(folder: Path) -> ModelEntry:
    settings = ModelSettings(name="iris", implementation="mlpack.model.MLModel")
    settings.folder = str(folder)
    entry = ModelEntry(settings)
    entry.state = State.READY
    return entry


def test_plain_hint_uses_http_and_no_credentials(tmp_path: Path) -> None:
    hint = ready_hint([_ready_entry(tmp_path)], "127.0.0.1", 8080)
    assert hint is not None
    assert "curl -s 127.0.0.1:8080/v2/models/iris" in hint
    assert "https" not in hint and "Authorization" not in hint


def test_tls_hint_uses_https_and_the_served_chain(tmp_path: Path) -> None:
    hint = ready_hint(
        [_ready_entry(tmp_path)], "0.0.0.0", 8443, TLSHint("/etc/tls/cert.pem", False)
    )
    assert hint is not None
    assert "--cacert /etc/tls/cert.pem https://localhost:8443/v2/models/iris" in hint
    assert "--cert" not in hint


def test_mutual_tls_hint_asks_for_a_client_pair(tmp_path: Path) -> None:
    hint = ready_hint([_ready_entry(tmp_path)], "127.0.0.1", 8443, TLSHint("/c.pem", True))
    assert hint is not None and "--cert CLIENT.pem --key CLIENT.key" in hint


def test_auth_hint_sends_a_key_in_the_configured_header(tmp_path: Path) -> None:
    bearer = ready_hint([_ready_entry(tmp_path)], "127.0.0.1", 8080, None, "authorization")
    assert bearer is not None and "-H 'Authorization: Bearer $MLPACK_API_KEY'" in bearer
    custom = ready_hint([_ready_entry(tmp_path)], "127.0.0.1", 8080, None, "x-api-key")
    assert custom is not None and "-H 'x-api-key: $MLPACK_API_KEY'" in custom
