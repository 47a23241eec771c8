"""The model this project serves: a text generator that streams one token at a time.

``predict_stream`` is what ``/infer_stream``, ``/generate_stream`` and gRPC
``ModelStreamInfer`` call: yield one response per token as soon as it exists.
``predict`` answers the whole text at once (``/infer``, ``/generate``). Replace the
Markov chain with your own generator; keep the class name in step with
``implementation`` in ``model-settings.json``.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from mlpack import MLModel
from mlpack.errors import InvalidRequest
from mlpack.types import Datatype, InferenceRequest, InferenceResponse, ResponseOutput

TOKEN = re.compile(r"[A-Za-z']+|[.,;:!?]")
MAX_TOKENS = 1000  # the most tokens one request may ask for


class Model(MLModel):
    """Continues ``text_input`` with words of ``corpus.txt`` (parameters: max_tokens, seed)."""

    async def load(self) -> bool:
        # self.settings.folder is this project's folder; parameters.uri names the corpus.
        corpus = Path(self.settings.folder or ".") / (self.settings.parameters.uri or "corpus.txt")
        words = TOKEN.findall(corpus.read_text(encoding="utf-8").split("\n---\n", 1)[-1])
        self.next: dict[tuple[str, str], list[str]] = {}
        for a, b, c in zip(words, words[1:], words[2:], strict=False):
            self.next.setdefault((a.lower(), b.lower()), []).append(c)
        self.starts = [key for key in self.next if key[0] == "."] or list(self.next)
        return True

    def generate(self, prompt: str, max_tokens: int, seed: int) -> Iterator[str]:
        """``max_tokens`` tokens continuing ``prompt``; the same seed gives the same tokens."""
        rng = random.Random(seed)
        last = tuple(word.lower() for word in TOKEN.findall(prompt)[-2:])
        state = last if last in self.next else rng.choice(self.starts)
        for _ in range(max_tokens):
            choices = self.next.get(state) or self.next[rng.choice(self.starts)]
            word = rng.choice(choices)
            state = (state[1], word.lower())
            yield word if word in ".,;:!?" else " " + word

    def _options(self, payload: InferenceRequest) -> tuple[list[str], int, int]:
        parameters = payload.parameters
        max_tokens = getattr(parameters, "max_tokens", None) or 30
        seed = getattr(parameters, "seed", None) or 0
        if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS:
            raise InvalidRequest(f"parameter 'max_tokens' must be an integer 1..{MAX_TOKENS}")
        if not isinstance(seed, int):
            raise InvalidRequest("parameter 'seed' must be an integer")
        prompts = [
            value.decode() if isinstance(value, bytes) else str(value)
            for request_input in payload.inputs
            if request_input.name == "text_input"
            for value in self.decode(request_input)
        ]
        if not prompts:
            raise InvalidRequest("the request needs a BYTES input 'text_input'")
        return prompts, max_tokens, seed

    def _response(self, payload: InferenceRequest, texts: list[str]) -> InferenceResponse:
        output = ResponseOutput(
            name="text_output", shape=[len(texts)], datatype=Datatype.BYTES, data=texts
        )
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=[output])

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        prompts, max_tokens, seed = self._options(payload)
        texts = ["".join(self.generate(prompt, max_tokens, seed)) for prompt in prompts]
        return self._response(payload, texts)

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            prompts, max_tokens, seed = self._options(payload)
            for token in self.generate(prompts[0], max_tokens, seed):
                yield self._response(payload, [token])
