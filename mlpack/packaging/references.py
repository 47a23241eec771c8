"""Image references: checking a tag before any work, and the base images a Dockerfile needs.

``check_tag`` follows the Docker reference grammar (``[HOST[:PORT]/]NAME[:TAG][@DIGEST]``,
name components in lower case), so a bad ``-t`` is refused in milliseconds rather than
after the wheels and the context are made.
"""

from __future__ import annotations

import re

from ..environments.pack import BuildError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)"
_REFERENCE = re.compile(
    rf"^(?:{_HOST})?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$"
)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.I | re.M)
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.M)


def check_tag(tag: str) -> None:
    """Raise ``BuildError`` unless ``tag`` is a valid image reference."""
    if not tag or len(tag) > 255 or not _REFERENCE.match(tag):
        raise BuildError(
            f"{tag!r} is not a valid image name: use [REGISTRY/]NAME[:TAG], NAME in lower case "
            "(letters, digits, '.', '_', '-', '/'), e.g. my-models:0.1"
        )


def base_images(
    dockerfile: str, default_base: str, build_args: dict[str, str] | None = None
) -> list[str]:
    """The images a Dockerfile's ``FROM`` lines pull in (its own stages excluded)."""
    values = {name: value for name, value in _ARG.findall(dockerfile) if value}
    values.setdefault("BASE_IMAGE", default_base)
    values.update(build_args or {})
    stages: set[str] = set()
    images: list[str] = []
    for image, stage in _FROM.findall(dockerfile):
        resolved = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: values.get(m.group(1), ""), image
        )
        if (
            resolved
            and resolved not in stages
            and resolved.lower() != "scratch"
            and resolved not in images
        ):
            images.append(resolved)
        if stage:
            stages.add(stage)
    return images
