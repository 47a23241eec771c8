"""A streaming text generator: a Markov chain trained on ``corpus.txt`` when it loads.

``predict_stream`` yields one ``text_output`` token per response, as it is generated;
``predict`` answers the whole continuation at once. Request parameters: ``max_tokens``
(default 30) and ``seed`` (default 0; the same seed gives the same text).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from markov import MarkovChain, read_options, read_prompt

from mlpack import MLModel
from mlpack.errors import InvalidRequest
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class MarkovGenerator(MLModel):
    """Continues a prompt with words from the corpus, one token per streamed response."""

    async def load(self) -> bool:
        folder = Path(self.settings.folder or ".")
        corpus = folder / (self.settings.parameters.uri or "corpus.txt")
        order = int(self.settings.parameters.extra.get("order", 2))
        self.chain = MarkovChain(corpus.read_text(encoding="utf-8"), order)
        return True

    def _start(self, payload: InferenceRequest) -> tuple[str, int, int]:
        try:
            max_tokens, seed = read_options(payload.parameters)
            return read_prompt(list(payload.inputs)), max_tokens, seed
        except ValueError as error:
            raise InvalidRequest(f"model '{self.name}': {error}") from None

    def _response(self, payload: InferenceRequest, text: str) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[ResponseOutput(name="text_output", shape=[1], datatype="BYTES", data=[text])],
        )

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        prompt, max_tokens, seed = self._start(payload)
        return self._response(payload, "".join(self.chain.generate(prompt, max_tokens, seed)))

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            prompt, max_tokens, seed = self._start(payload)
            for token in self.chain.generate(prompt, max_tokens, seed):
                yield self._response(payload, token)
