"""The runtime's options, read from ``parameters.extra`` with MLServer's names.

``task``, ``task_suffix``, ``pretrained_model``, ``pretrained_tokenizer``, ``device``,
``batch_size``, ``inter_op_threads``, ``intra_op_threads`` and ``framework`` mean what
they mean for ``mlserver-huggingface``; ``max_new_tokens`` (default for generation) and
``max_new_tokens_limit`` (the most a request may ask for) are mlpack's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlpack.errors import ModelLoadError

DEFAULT_MAX_NEW_TOKENS_LIMIT = 512
_KNOWN = {
    "task",
    "task_suffix",
    "pretrained_model",
    "pretrained_tokenizer",
    "device",
    "batch_size",
    "inter_op_threads",
    "intra_op_threads",
    "framework",
    "optimum_model",
    "max_new_tokens",
    "max_new_tokens_limit",
}


@dataclass(frozen=True)
class HuggingFaceSettings:
    """What ``parameters.extra`` asks of the runtime."""

    task: str | None = None
    task_suffix: str = ""
    pretrained_model: str | None = None
    pretrained_tokenizer: str | None = None
    device: int | str = -1
    batch_size: int | None = None
    inter_op_threads: int | None = None
    intra_op_threads: int | None = None
    max_new_tokens: int | None = None
    max_new_tokens_limit: int = DEFAULT_MAX_NEW_TOKENS_LIMIT

    @property
    def full_task(self) -> str | None:
        return f"{self.task}{self.task_suffix}" if self.task else None

    @property
    def torch_device(self) -> str:
        """``-1`` (MLServer's CPU) → ``cpu``; ``0`` → ``cuda:0``; strings as given."""
        if isinstance(self.device, int):
            return "cpu" if self.device < 0 else f"cuda:{self.device}"
        return self.device


def read_settings(model_name: str, extra: dict[str, Any] | None) -> HuggingFaceSettings:
    """Check ``parameters.extra`` and turn it into settings (``ModelLoadError`` if wrong)."""
    extra = dict(extra or {})
    unknown = sorted(set(extra) - _KNOWN)
    if unknown:
        raise ModelLoadError(
            f"model '{model_name}': unknown parameters.extra {unknown} (known: {sorted(_KNOWN)})"
        )
    if extra.pop("optimum_model", False):
        raise ModelLoadError(f"model '{model_name}': optimum_model is not supported")
    framework = extra.pop("framework", "pt")
    if framework != "pt":
        raise ModelLoadError(
            f"model '{model_name}': framework '{framework}' is not supported (only 'pt', PyTorch)"
        )
    for name in (
        "batch_size",
        "inter_op_threads",
        "intra_op_threads",
        "max_new_tokens",
        "max_new_tokens_limit",
    ):
        value = extra.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ModelLoadError(
                f"model '{model_name}': parameters.extra.{name} must be a positive integer, "
                f"got {value!r}"
            )
    try:
        settings = HuggingFaceSettings(**extra)
    except TypeError as error:
        raise ModelLoadError(f"model '{model_name}': {error}") from None
    if settings.max_new_tokens and settings.max_new_tokens > settings.max_new_tokens_limit:
        raise ModelLoadError(
            f"model '{model_name}': max_new_tokens {settings.max_new_tokens} is above "
            f"max_new_tokens_limit {settings.max_new_tokens_limit}"
        )
    return settings
