"""Build a ``transformers`` pipeline from folders on disk, never from the Hub.

``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set before ``transformers`` is
imported, and every ``from_pretrained`` call passes ``local_files_only=True``: a missing
file is a load error naming the folder, not a download.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from mlpack.errors import ModelLoadError

from .settings import HuggingFaceSettings

CONFIG_FILE = "config.json"
# A folder holds a tokenizer when it has one of these (fast, slow/BPE, sentencepiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)
# Architecture name ending → pipeline task, for folders whose settings name no task.
_ARCHITECTURE_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
)
# transformers resolves its names lazily, and not safely from two threads at once: models
# of one server load concurrently, so building pipelines takes turns.
_build_lock = threading.Lock()


def go_offline() -> None:
    """No Hub access from this process, whatever the environment said."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def model_folder(model_name: str, base: Path, uri: str | None, pretrained: str | None) -> Path:
    """The folder to load: ``pretrained_model``, else ``parameters.uri``, else the model's own."""
    location = pretrained or uri
    folder = (
        (base / location)
        if location and not Path(location).is_absolute()
        else Path(location or base)
    )
    if not folder.is_dir():
        raise ModelLoadError(
            f"model '{model_name}': {folder} is not a folder; mlpack loads Hugging Face models "
            "from disk only (save one with save_pretrained() and point parameters.uri at it)"
        )
    if not (folder / CONFIG_FILE).is_file():
        raise ModelLoadError(
            f"model '{model_name}': {folder} has no {CONFIG_FILE}; it must hold a model saved "
            "with save_pretrained() (config.json, weights, tokenizer files)"
        )
    return folder


def check_tokenizer_folder(model_name: str, folder: Path) -> Path:
    """``folder`` if it holds tokenizer files (transformers would otherwise guess one)."""
    if not folder.is_dir():
        raise ModelLoadError(f"model '{model_name}': tokenizer folder {folder} is not a folder")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"model '{model_name}': {folder} has no tokenizer files (one of "
            f"{', '.join(TOKENIZER_FILES)}); save the tokenizer with save_pretrained() there "
            "or set parameters.extra.pretrained_tokenizer"
        )
    return folder


def infer_task(model_name: str, folder: Path) -> str:
    """The task for a folder whose settings name none, from its config's architecture."""
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    for architecture in config.get("architectures") or []:
        for ending, task in _ARCHITECTURE_TASKS:
            if architecture.endswith(ending):
                return task
    raise ModelLoadError(
        f"model '{model_name}': cannot tell the task of {folder} from its config "
        f"(architectures {config.get('architectures')}); set parameters.extra.task"
    )


def build_pipeline(
    model_name: str,
    folder: Path,
    tokenizer_folder: Path,
    task: str,
    settings: HuggingFaceSettings,
) -> Any:
    """Load the model and tokenizer from disk and wrap them in the task's pipeline."""
    go_offline()
    with _build_lock:
        return _build(model_name, folder, tokenizer_folder, task, settings)


def _build(
    model_name: str,
    folder: Path,
    tokenizer_folder: Path,
    task: str,
    settings: HuggingFaceSettings,
) -> Any:
    from transformers import AutoTokenizer, pipeline
    from transformers.pipelines import check_task

    try:
        _, targeted, _ = check_task(task)
    except KeyError as error:
        raise ModelLoadError(f"model '{model_name}': {error.args[0]}") from None
    model_classes = targeted.get("pt") or ()
    if not model_classes:
        raise ModelLoadError(f"model '{model_name}': task '{task}' has no PyTorch model class")
    _set_threads(settings)
    try:
        model = model_classes[0].from_pretrained(str(folder), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"model '{model_name}': cannot load '{task}' model from {folder} "
            f"(tokenizer from {tokenizer_folder}): {error}"
        ) from None
    build: Any = pipeline  # typed per literal task name; ours is only known at run time
    return build(
        task,
        model=model,
        tokenizer=tokenizer,
        device=settings.torch_device,
    )


def _set_threads(settings: HuggingFaceSettings) -> None:
    import torch

    if settings.intra_op_threads:
        torch.set_num_threads(settings.intra_op_threads)
    if settings.inter_op_threads:
        # Settable once per process, before any parallel work.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(settings.inter_op_threads)
