"""A custom model with strings in and out: a word-list sentiment scorer.

``decode_args`` reads ``predict``'s signature: ``text: list[str]`` decodes the BYTES
input called ``text`` into Python strings, and the returned ``(list[str], np.ndarray)``
becomes the outputs declared in model-settings.json (``label``, ``score``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from mlpack import MLModel
from mlpack.codecs import decode_args

_WORD = re.compile(r"[a-z']+")


class SentimentModel(MLModel):
    """Scores each text: +1 per positive word, -1 per negative word."""

    async def load(self) -> bool:
        path = Path(self.settings.folder or ".") / (self.settings.parameters.uri or "lexicon.json")
        lexicon = json.loads(path.read_text(encoding="utf-8"))
        self.weights = dict.fromkeys(lexicon["positive"], 1)
        self.weights.update(dict.fromkeys(lexicon["negative"], -1))
        return True

    @decode_args
    async def predict(self, text: list[str]) -> tuple[list[str], np.ndarray]:
        scores = np.array(
            [
                sum(self.weights.get(word, 0) for word in _WORD.findall(line.lower()))
                for line in text
            ],
            dtype=np.int64,
        )
        labels = ["positive" if s > 0 else "negative" if s < 0 else "neutral" for s in scores]
        return labels, scores
