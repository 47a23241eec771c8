"""The streaming benchmark's model for MLServer: the example's Markov generator, served by
``mlserver.MLModel`` the same way ``examples/streaming/models.py`` serves it for mlpack.

Copied into MLServer's model folder as ``models.py`` (next to ``markov.py``); imported only
by MLServer's own interpreter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from markov import MarkovChain, read_options, read_prompt  # type: ignore[import-not-found]
from mlserver import MLModel  # type: ignore[import-not-found]
from mlserver.types import (  # type: ignore[import-not-found]
    InferenceRequest,
    InferenceResponse,
    ResponseOutput,
)


class MarkovGenerator(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        text = (Path(__file__).resolve().parent / "corpus.txt").read_text(encoding="utf-8")
        self.chain = MarkovChain(text, 2)
        return True

    def _response(self, payload: InferenceRequest, text: str) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[ResponseOutput(name="text_output", shape=[1], datatype="BYTES", data=[text])],
        )

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        max_tokens, seed = read_options(payload.parameters)
        prompt = read_prompt(list(payload.inputs))
        return self._response(payload, "".join(self.chain.generate(prompt, max_tokens, seed)))

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            max_tokens, seed = read_options(payload.parameters)
            prompt = read_prompt(list(payload.inputs))
            for token in self.chain.generate(prompt, max_tokens, seed):
                yield self._response(payload, token)
