"""A word-level Markov chain: trained on a text, it generates one word at a time.

Pure Python with no serving code, so the mlpack model (``models.py``) and the
benchmark's MLServer twin share it. ``generate`` is deterministic for a given seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

TOKEN = re.compile(r"[A-Za-z']+|[.,;:!?]")
PUNCTUATION = frozenset(".,;:!?")
HEADER_END = "\n---\n"  # the corpus's notice ends at a line of three dashes


class MarkovChain:
    """Next-word choices for every run of ``order`` words seen in the training text."""

    def __init__(self, text: str, order: int = 2) -> None:
        if order < 1:
            raise ValueError("order must be >= 1")
        tokens = TOKEN.findall(text.split(HEADER_END, 1)[-1])
        if len(tokens) <= order:
            raise ValueError(f"the text has too few words for order {order}")
        self.order = order
        self.next: dict[tuple[str, ...], list[str]] = {}
        for i in range(len(tokens) - order):
            key = tuple(token.lower() for token in tokens[i : i + order])
            self.next.setdefault(key, []).append(tokens[i + order])
        # Sentence openings: where a restart begins (the text's start, and after each '.').
        self.starts = [tuple(tokens[:order])] + [
            tuple(tokens[i + 1 : i + 1 + order])
            for i in range(len(tokens) - order - 1)
            if tokens[i] == "."
        ]

    def generate(self, prompt: str, max_tokens: int, seed: int = 0) -> Iterator[str]:
        """Up to ``max_tokens`` tokens continuing ``prompt``: words carry their leading space."""
        rng = random.Random(seed)
        state = tuple(token.lower() for token in TOKEN.findall(prompt)[-self.order :])
        produced = 0
        while produced < max_tokens:
            choices = self.next.get(state)
            if choices is None:  # an unknown prompt or a dead end: open a new sentence
                start = rng.choice(self.starts)
                for word in start[: max_tokens - produced]:
                    yield spaced(word)
                    produced += 1
                state = tuple(word.lower() for word in start)
                continue
            word = rng.choice(choices)
            yield spaced(word)
            produced += 1
            state = (*state[1:], word.lower())


def spaced(token: str) -> str:
    """A token as it joins the text: punctuation sticks to the word before it."""
    return token if token in PUNCTUATION else " " + token


DEFAULT_MAX_TOKENS = 30
MAX_TOKENS_LIMIT = 1000  # a request may not ask for more tokens than this


def read_options(parameters: object) -> tuple[int, int]:
    """``(max_tokens, seed)`` from a request's parameters; ``ValueError`` says what is wrong."""
    max_tokens = getattr(parameters, "max_tokens", None)
    seed = getattr(parameters, "seed", None)
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    seed = 0 if seed is None else seed
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise ValueError(f"parameter 'max_tokens' must be an integer, got {max_tokens!r}")
    if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise ValueError(f"parameter 'max_tokens' must be 1..{MAX_TOKENS_LIMIT}, got {max_tokens}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"parameter 'seed' must be an integer, got {seed!r}")
    return max_tokens, seed


def read_prompt(inputs: list[object]) -> str:
    """The text of the BYTES tensor ``text_input`` (one element); ``ValueError`` if absent."""
    for tensor in inputs:
        if getattr(tensor, "name", None) == "text_input":
            data = getattr(tensor, "data", None)
            values = list(getattr(data, "root", data) or [])
            while values and isinstance(values[0], list):  # [[...]]: a nested JSON shape
                values = values[0]
            if len(values) != 1:
                raise ValueError(f"input 'text_input' must hold one text, got {len(values)}")
            value = values[0]
            return value.decode("utf-8") if isinstance(value, bytes) else str(value)
    raise ValueError("the request needs a BYTES input 'text_input' (the prompt)")
