"""Make the model this example serves: a tiny text classifier, trained on toy reviews and
saved to ``model/`` with ``save_pretrained`` (no network, no Hub; a few seconds on a CPU).

The architecture is a one-layer BERT built from a config (random start, seeded), the
tokenizer a word-level one trained here with the ``tokenizers`` package. Serving needs
only the folder: any text-classification model saved by ``save_pretrained()`` works the
same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
LABELS = {0: "negative", 1: "positive"}
POSITIVE = ["great", "fine", "fun", "good", "lovely"]
NEGATIVE = ["bad", "boring", "terrible", "awful", "dull"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def reviews() -> tuple[list[str], list[int]]:
    """Toy reviews: a story is positive when its words are."""
    texts, labels = [], []
    for words, label in ((POSITIVE, 1), (NEGATIVE, 0)):
        for first in words:
            for second in words:
                texts.append(f"a {first} and {second} story")
                labels.append(label)
    return texts, labels


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on ``texts`` (unknown words become [UNK])."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def train(destination: Path = HERE / "model") -> Path:
    torch.manual_seed(0)
    texts, labels = reviews()
    tokenizer = word_tokenizer(texts)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        id2label=LABELS,
        label2id={name: index for index, name in LABELS.items()},
    )
    model = BertForSequenceClassification(config)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    targets = torch.tensor(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        loss = model(**batch, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    if destination.exists():
        shutil.rmtree(destination)
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    return destination


if __name__ == "__main__":
    print(f"wrote {train()}")
