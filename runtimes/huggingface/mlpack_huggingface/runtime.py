"""Serve a ``transformers`` pipeline loaded from a local folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.errors import InvalidRequest
from mlpack.model import MLModel
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    ResponseOutput,
)

from .loading import build_pipeline, check_tokenizer_folder, infer_task, model_folder
from .outputs import answers_to_outputs
from .settings import HuggingFaceSettings, read_settings
from .streaming import stream_text

INPUT_NAME = "args"  # MLServer's name for the pipeline's positional input
DEFAULT_MAX_NEW_TOKENS = 32
STREAM_OUTPUT = "generated_text"  # each streamed response: the next piece of new text
GENERATION_TASKS = ("text-generation", "text2text-generation", "summarization", "translation")
# Per-request pipeline options read from the request's parameters, with their checks.
_GENERATION_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "max_new_tokens": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "do_sample": lambda v: isinstance(v, bool),
    "temperature": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
    "top_k": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "top_p": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1,
    "repetition_penalty": lambda v: (
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    ),
}
_FULL_TEXT_OPTION = {"return_full_text": lambda v: isinstance(v, bool)}
_TASK_OUTPUTS = {
    "text-classification": [("label", Datatype.BYTES), ("score", Datatype.FP64)],
    "sentiment-analysis": [("label", Datatype.BYTES), ("score", Datatype.FP64)],
    "text-generation": [("generated_text", Datatype.BYTES)],
    "text2text-generation": [("generated_text", Datatype.BYTES)],
    "summarization": [("summary_text", Datatype.BYTES)],
}


class HuggingFaceModel(MLModel):
    """A ``transformers`` pipeline for a text task, from a folder made by ``save_pretrained``.

    ``parameters.uri`` (or ``parameters.extra.pretrained_model``) is the folder; the task is
    ``parameters.extra.task`` or, failing that, read from the folder's ``config.json``.
    The input is one BYTES tensor of texts (``args``, as MLServer names it; any name is
    accepted); each text gets one answer. Nothing is ever fetched from the Hub.
    """

    async def load(self) -> bool:
        self._hf: HuggingFaceSettings = read_settings(self.name, self.settings.parameters.extra)
        base = Path(self.settings.folder) if self.settings.folder else Path(".")
        folder = model_folder(
            self.name, base, self.settings.parameters.uri, self._hf.pretrained_model
        )
        tokenizer_folder = check_tokenizer_folder(
            self.name,
            base / self._hf.pretrained_tokenizer if self._hf.pretrained_tokenizer else folder,
        )
        self._task = self._hf.full_task or infer_task(self.name, folder)
        self._pipeline = build_pipeline(self.name, folder, tokenizer_folder, self._task, self._hf)
        self._generates = self._task.startswith(GENERATION_TASKS)
        if self._task == "text-generation":
            # Batched prompts are padded on the left, so every answer continues its own prompt.
            self._pipeline.tokenizer.padding_side = "left"
        config = self._pipeline.model.config
        self._max_positions = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        self._declare_metadata()
        return True

    def _declare_metadata(self) -> None:
        if not self.inputs:
            self.inputs = [
                MetadataTensor(
                    name=INPUT_NAME,
                    datatype=Datatype.BYTES,
                    shape=[-1],
                    parameters=Parameters(content_type="str"),
                )
            ]
        if not self.outputs:
            self.outputs = [
                MetadataTensor(name=name, datatype=datatype, shape=[-1, 1])
                for name, datatype in _TASK_OUTPUTS.get(self._task, [])
            ]

    async def unload(self) -> bool:
        self._pipeline = None
        return True

    # -- predict -----------------------------------------------------------------
    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        texts = self._texts(payload)
        options = self._options(payload)
        if self._generates:
            self._check_prompts(texts, options["max_new_tokens"])
        else:
            options["truncation"] = True
        if self._hf.batch_size:
            options["batch_size"] = self._hf.batch_size
        answers = self._pipeline(texts, **options)
        return InferenceResponse(
            model_name=self.name, model_version=self.version, outputs=answers_to_outputs(answers)
        )

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """Text generation, streamed: one response per piece of new text, as it is made.

        Each request holds one prompt; each response carries the next piece in
        ``generated_text`` (together: the new text ``predict`` answers). Closing the
        stream stops generation at its next token.
        """
        async for payload in payloads:
            if self._task != "text-generation":
                raise InvalidRequest(
                    f"model '{self.name}': only text-generation streams; this model's task "
                    f"is '{self._task}' (use infer)"
                )
            texts = self._texts(payload)
            if len(texts) != 1:
                raise InvalidRequest(
                    f"model '{self.name}': a stream takes one prompt per request, got {len(texts)}"
                )
            options = self._options(payload)
            self._check_prompts(texts, options["max_new_tokens"])
            async for piece in stream_text(self.name, self._pipeline, texts[0], options):
                yield InferenceResponse(
                    model_name=self.name,
                    model_version=self.version,
                    id=payload.id,
                    outputs=[_text_output(STREAM_OUTPUT, piece)],
                )

    def _texts(self, payload: InferenceRequest) -> list[str]:
        if len(payload.inputs) != 1:
            raise InvalidRequest(
                f"model '{self.name}' takes one BYTES input of texts ('{INPUT_NAME}'), "
                f"got {len(payload.inputs)} inputs"
            )
        tensor = payload.inputs[0]
        if tensor.datatype is not Datatype.BYTES:
            raise InvalidRequest(
                f"input '{tensor.name}': model '{self.name}' expects BYTES, "
                f"got {tensor.datatype.value}"
            )
        texts = []
        for value in tensor_as_ndarray(tensor).reshape(-1):
            try:
                text = (
                    value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)
                )
            except UnicodeDecodeError:
                raise InvalidRequest(f"input '{tensor.name}': texts must be UTF-8") from None
            texts.append(text)
        if not texts:
            raise InvalidRequest(f"input '{tensor.name}': no texts")
        return texts

    def _options(self, payload: InferenceRequest) -> dict[str, Any]:
        if not self._generates:
            return {}
        allowed = dict(_GENERATION_OPTIONS)
        if self._task == "text-generation":
            allowed.update(_FULL_TEXT_OPTION)
        options: dict[str, Any] = {}
        for name, check in allowed.items():
            value = getattr(payload.parameters, name, None) if payload.parameters else None
            if value is None:
                continue
            if not check(value):
                raise InvalidRequest(
                    f"model '{self.name}': parameter {name}={value!r} is not valid"
                )
            options[name] = value
        limit = self._hf.max_new_tokens_limit
        options.setdefault(
            "max_new_tokens", self._hf.max_new_tokens or min(DEFAULT_MAX_NEW_TOKENS, limit)
        )
        if options["max_new_tokens"] > limit:
            raise InvalidRequest(
                f"model '{self.name}': max_new_tokens {options['max_new_tokens']} is above this "
                f"model's limit of {limit} (parameters.extra.max_new_tokens_limit)"
            )
        return options

    def _check_prompts(self, texts: list[str], max_new_tokens: int) -> None:
        tokenizer = self._pipeline.tokenizer
        for index, text in enumerate(texts):
            length = len(tokenizer(text)["input_ids"])
            if length == 0:
                raise InvalidRequest(f"model '{self.name}': text {index} is empty")
            if self._max_positions and length + max_new_tokens > self._max_positions:
                raise InvalidRequest(
                    f"model '{self.name}': text {index} has {length} tokens; with "
                    f"max_new_tokens {max_new_tokens} that is more than the model's "
                    f"{self._max_positions} positions"
                )


def _text_output(name: str, text: str) -> ResponseOutput:
    return ResponseOutput(
        name=name,
        datatype=Datatype.BYTES,
        shape=[1, 1],
        data=[text],
        parameters=Parameters(content_type="str"),
    )
