"""Pipeline answers → protocol outputs, and parameters.extra checks (no model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlpack_huggingface.outputs import answers_to_outputs
from mlpack_huggingface.settings import read_settings

from mlpack.errors import ModelLoadError


def test_flat_records_become_typed_columns() -> None:
    answers = [{"label": "a", "score": np.float32(0.5)}, {"label": "b", "score": 0.25}]
    label, score = answers_to_outputs(answers)
    assert (label.name, label.datatype.value, label.shape) == ("label", "BYTES", [2, 1])
    assert label.data == ["a", "b"]
    assert (score.name, score.datatype.value, score.data) == ("score", "FP64", [0.5, 0.25])
    [text] = answers_to_outputs([[{"generated_text": "x y"}], [{"generated_text": "z"}]])
    assert (text.name, text.data) == ("generated_text", ["x y", "z"])


def test_other_answers_become_json_strings() -> None:
    answers = [[{"entity": "A", "start": 0}, {"entity": "B", "start": 3}], []]
    [output] = answers_to_outputs(answers)
    assert output.name == "output" and output.shape == [2, 1]
    assert [json.loads(text) for text in output.data] == answers


def test_settings_use_mlserver_names_and_are_checked() -> None:
    settings = read_settings("m", {"task": "translation", "task_suffix": "_en_to_fr", "device": 0})
    assert settings.full_task == "translation_en_to_fr" and settings.torch_device == "cuda:0"
    assert read_settings("m", {}).torch_device == "cpu"
    with pytest.raises(ModelLoadError, match="batch_size must be a positive integer"):
        read_settings("m", {"batch_size": 0})
    with pytest.raises(ModelLoadError, match="optimum_model is not supported"):
        read_settings("m", {"optimum_model": True})
    with pytest.raises(ModelLoadError, match="max_new_tokens 600 is above max_new_tokens_limit"):
        read_settings("m", {"max_new_tokens": 600})
