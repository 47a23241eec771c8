"""``mlserver.utils``: ``get_model_uri`` and friends."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from mlpack.settings import ModelSettings

from .errors import InvalidModelURI

__mlpack_compat__ = True
__all__ = ["get_model_uri", "to_absolute_path"]


def to_absolute_path(model_settings: ModelSettings, uri: str) -> str:
    """``uri`` as an absolute path; relative ones are taken from the model's folder."""
    if os.path.isabs(uri):
        return uri
    base = Path(model_settings.folder) if model_settings.folder else Path.cwd()
    return str(base / uri)


async def get_model_uri(settings: ModelSettings, wellknown_filenames: Sequence[str] = ()) -> str:
    """The model's artefact: ``parameters.uri`` as a file, or a folder searched for
    ``wellknown_filenames`` (the folder itself when none is there). Non-``file`` URIs
    are returned unchanged."""
    uri = settings.parameters.uri if settings.parameters else None
    if not uri:
        raise InvalidModelURI(settings.name)
    parsed = urllib.parse.urlparse(uri, scheme="file")
    if parsed.scheme != "file":
        return uri
    path = to_absolute_path(settings, parsed.path)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in wellknown_filenames:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        return path
    raise InvalidModelURI(settings.name, path)
