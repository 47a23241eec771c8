"""HuggingFaceModel against real transformers pipelines on tiny models made here.

The models are built from configs with random weights and a word-level tokenizer trained
on a few sentences with the ``tokenizers`` package; nothing comes from the Hub.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from mlpack_huggingface import HuggingFaceModel, HuggingFaceRuntime

from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest

CORPUS = [
    "the movie was great fun",
    "a terrible boring film",
    "great acting and a fine story",
    "boring and bad",
    "what a fine day for a film",
    "the story was bad but the acting was great",
]
LABELS = {0: "negative", 1: "positive"}


def make_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        CORPUS, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def save_classifier(folder: Path) -> Path:
    """A one-layer BERT sequence classifier with random weights (seeded)."""
    import torch

    torch.manual_seed(0)
    tokenizer = make_tokenizer()
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=2,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_generator(folder: Path) -> Path:
    """A one-layer GPT-2 with random weights (seeded) and 24 positions."""
    import torch

    torch.manual_seed(1)
    tokenizer = make_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=24,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference(task: str, folder: Path, texts: list[str], **options: Any) -> list[Any]:
    """The same folder run by transformers directly."""
    model_class = (
        transformers.AutoModelForSequenceClassification
        if task == "text-classification"
        else transformers.AutoModelForCausalLM
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    tokenizer.padding_side = "left"
    pipe = transformers.pipeline(
        task,
        model=model_class.from_pretrained(folder, local_files_only=True),
        tokenizer=tokenizer,
        device="cpu",
    )
    return [pipe(text, **options)[0] for text in texts]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {
        "classifier": save_classifier(root / "classifier"),
        "generator": save_generator(root / "generator"),
    }


def _load(folder: Path, **parameters: Any) -> HuggingFaceModel:
    model = HuggingFaceModel(ModelSettings(name="hf", folder=str(folder), parameters=parameters))
    assert asyncio.run(model.load())
    return model


def _texts(texts: list[str], **parameters: Any) -> InferenceRequest:
    body: dict[str, Any] = {
        "inputs": [{"name": "args", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]
    }
    if parameters:
        body["parameters"] = parameters
    return InferenceRequest.model_validate(body)


def test_alias_is_the_same_class() -> None:
    assert HuggingFaceRuntime is HuggingFaceModel


def test_text_classification_matches_transformers(folders: dict[str, Path]) -> None:
    folder = folders["classifier"]
    model = _load(folder, extra={"batch_size": 4})  # task read from config.json
    assert model._task == "text-classification"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert [(t.name, t.datatype.value) for t in model.inputs] == [("args", "BYTES")]
    assert [(t.name, t.datatype.value) for t in model.outputs] == [
        ("label", "BYTES"),
        ("score", "FP64"),
    ]
    texts = ["great film", "boring story and bad acting", "an unknown word"]
    outputs = {o.name: o for o in model.predict(_texts(texts)).outputs}
    expected = reference("text-classification", folder, texts)
    assert outputs["label"].data == [e["label"] for e in expected]
    assert set(outputs["label"].data) <= set(LABELS.values())
    assert outputs["score"].data == pytest.approx([e["score"] for e in expected], abs=1e-6)
    assert outputs["label"].shape == [3, 1]


def test_text_generation_matches_transformers(folders: dict[str, Path]) -> None:
    folder = folders["generator"]
    model = _load(folder, extra={"task": "text-generation", "max_new_tokens_limit": 8})
    texts = ["the movie", "a fine day for"]
    [output] = model.predict(_texts(texts, max_new_tokens=4, do_sample=False)).outputs
    assert output.name == "generated_text" and output.shape == [2, 1]
    expected = reference("text-generation", folder, texts, max_new_tokens=4, do_sample=False)
    assert output.data == [e["generated_text"] for e in expected]
    assert all(text.startswith(prompt) for text, prompt in zip(output.data, texts, strict=True))
    assert output.data[0] != texts[0]  # tokens were generated

    with pytest.raises(InvalidRequest, match="max_new_tokens 9 is above this model's limit of 8"):
        model.predict(_texts(texts, max_new_tokens=9))
    with pytest.raises(InvalidRequest, match="parameter temperature=-1"):
        model.predict(_texts(texts, temperature=-1))
    long_prompt = " ".join(["great"] * 20)
    with pytest.raises(InvalidRequest, match=r"text 1 has 20 tokens; .* 24 positions"):
        model.predict(_texts(["fine", long_prompt], max_new_tokens=5))


def test_requests_the_runtime_refuses(folders: dict[str, Path]) -> None:
    model = _load(folders["classifier"])
    with pytest.raises(InvalidRequest, match="expects BYTES, got FP32"):
        model.predict(
            InferenceRequest.model_validate(
                {"inputs": [{"name": "args", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
            )
        )
    with pytest.raises(InvalidRequest, match="one BYTES input"):
        model.predict(
            InferenceRequest.model_validate(
                {
                    "inputs": [
                        {"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]},
                        {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["y"]},
                    ]
                }
            )
        )


def test_load_errors_name_the_folder(tmp_path: Path, folders: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=f"{tmp_path} has no config.json"):
        _load(tmp_path)
    with pytest.raises(
        ModelLoadError, match="is not a folder; mlpack loads Hugging Face models from disk"
    ):
        _load(tmp_path, extra={"pretrained_model": "distilbert/distilbert-base-uncased"})
    no_tokenizer = shutil.copytree(folders["classifier"], tmp_path / "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tokenizer / name).unlink()
    with pytest.raises(ModelLoadError, match=f"{no_tokenizer} has no tokenizer files"):
        _load(no_tokenizer)
    no_weights = shutil.copytree(folders["classifier"], tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=f"from {no_weights}"):
        _load(no_weights)
    unknown = shutil.copytree(folders["classifier"], tmp_path / "unknown")
    config = json.loads((unknown / "config.json").read_text())
    config["architectures"] = ["SomethingElse"]
    (unknown / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"set parameters\.extra\.task"):
        _load(unknown)
    with pytest.raises(ModelLoadError, match=r"unknown parameters.extra \['colour'\]"):
        _load(folders["classifier"], extra={"colour": "red"})
    with pytest.raises(ModelLoadError, match="framework 'tf' is not supported"):
        _load(folders["classifier"], extra={"framework": "tf"})


@pytest.mark.e2e
def test_served_end_to_end_with_batching_over_rest_and_grpc(
    tmp_path: Path,
    folders: dict[str, Path],
) -> None:
    """A real ``mlpack start``: classification with adaptive batching, and generation."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import numpy as np
    import tritonclient.grpc as triton_grpc

    from tests.helpers.server import start_server

    root = tmp_path / "models"
    for name, task in (("classifier", "text-classification"), ("generator", "text-generation")):
        folder = shutil.copytree(folders[name], root / name)
        settings: dict[str, Any] = {
            "name": name,
            "implementation": "mlpack_huggingface.HuggingFaceModel",
            "parameters": {"extra": {"task": task, "batch_size": 8}},
        }
        if name == "classifier":
            settings.update(max_batch_size=8, max_batch_time=0.05)
        (folder / "model-settings.json").write_text(json.dumps(settings))
    server = start_server(root, tmp_path, timeout=180, env={"HF_HUB_OFFLINE": "0"})
    try:
        texts = [CORPUS[i % len(CORPUS)] for i in range(12)]
        expected = reference("text-classification", folders["classifier"], texts)
        url = f"{server.url}/v2/models/classifier/infer"

        def classify(text: str) -> dict[str, Any]:
            answer = httpx.post(
                url,
                timeout=60,
                json={
                    "inputs": [{"name": "args", "shape": [1], "datatype": "BYTES", "data": [text]}]
                },
            )
            assert answer.status_code == 200, answer.text
            return {o["name"]: o["data"][0] for o in answer.json()["outputs"]}

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(classify, texts))
        assert [a["label"] for a in answers] == [e["label"] for e in expected]
        assert [a["score"] for a in answers] == pytest.approx(
            [e["score"] for e in expected], abs=1e-5
        )
        # The batcher ran the pipeline on lists: every request was counted in some execution.
        from prometheus_client.parser import text_string_to_metric_families

        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30).text
        batches = {
            s.name: s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.labels.get("model_name") == "classifier"
            and s.name.startswith("model_infer_batch_size")
        }
        assert batches["model_infer_batch_size_sum"] == len(texts)
        assert 1 <= batches["model_infer_batch_size_count"] <= len(texts)

        generated = httpx.post(
            f"{server.url}/v2/models/generator/infer",
            timeout=60,
            json={
                "parameters": {"max_new_tokens": 3, "do_sample": False},
                "inputs": [
                    {"name": "args", "shape": [1], "datatype": "BYTES", "data": ["the movie"]}
                ],
            },
        )
        assert generated.status_code == 200, generated.text
        want = reference(
            "text-generation",
            folders["generator"],
            ["the movie"],
            max_new_tokens=3,
            do_sample=False,
        )[0]["generated_text"]
        assert generated.json()["outputs"][0]["data"] == [want]
        refused = httpx.post(
            f"{server.url}/v2/models/generator/infer",
            timeout=60,
            json={
                "parameters": {"max_new_tokens": 100000},
                "inputs": [
                    {"name": "args", "shape": [1], "datatype": "BYTES", "data": ["the movie"]}
                ],
            },
        )
        assert refused.status_code == 400 and "max_new_tokens" in refused.json()["error"]

        client = triton_grpc.InferenceServerClient(server.grpc_address)
        try:
            tensor = triton_grpc.InferInput("args", [2], "BYTES")
            tensor.set_data_from_numpy(np.array([t.encode() for t in texts[:2]], dtype=object))
            result = client.infer("classifier", [tensor])
            assert [v.decode() for v in result.as_numpy("label").reshape(-1)] == [
                e["label"] for e in expected[:2]
            ]
        finally:
            client.close()
    finally:
        server.stop()


# -- streaming (predict_stream) --------------------------------------------------------------
def save_long_generator(folder: Path) -> Path:
    """A one-layer GPT-2 with random weights, 96 positions and no end token (it never stops
    on its own before max_new_tokens)."""
    import torch

    torch.manual_seed(2)
    tokenizer = make_tokenizer()
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=96,
        bos_token_id=2,
        eos_token_id=None,
        pad_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():  # special tokens score 0: greedy decoding picks words
        model.transformer.wte.weight[: len(tokenizer.all_special_ids)] = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def long_generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_long_generator(tmp_path_factory.mktemp("hf-stream") / "generator")


async def _one(request: InferenceRequest) -> Any:
    yield request


def _words(text: str) -> list[str]:
    return text.split()


def test_generation_streams_the_same_text_piece_by_piece(long_generator: Path) -> None:
    model = _load(long_generator, extra={"task": "text-generation", "max_new_tokens_limit": 80})
    request = _texts(["the movie"], max_new_tokens=6, do_sample=False)

    async def collect() -> list[Any]:
        return [response async for response in model.predict_stream(_one(request))]

    responses = asyncio.run(collect())
    pieces = [r.outputs[0].data[0] for r in responses]
    assert len(pieces) >= 2 and all(r.outputs[0].name == "generated_text" for r in responses)
    expected = reference(
        "text-generation",
        long_generator,
        ["the movie"],
        max_new_tokens=6,
        do_sample=False,
        return_full_text=False,
    )[0]["generated_text"]
    assert _words("".join(pieces)) == _words(expected) and len(_words(expected)) == 6


def test_closing_the_stream_stops_generation(
    long_generator: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from mlpack_huggingface.streaming import STREAM_QUEUE_SIZE

    model = _load(long_generator, extra={"task": "text-generation", "max_new_tokens_limit": 80})
    request = _texts(["the movie"], max_new_tokens=80, do_sample=False)

    async def first_then_close() -> str:
        stream = model.predict_stream(_one(request))
        first = await stream.__anext__()
        await stream.aclose()
        return str(first.outputs[0].data[0])

    with caplog.at_level("INFO", logger="mlpack.runtimes.huggingface"):
        assert asyncio.run(first_then_close())
    [line] = [r.getMessage() for r in caplog.records if "stream closed" in r.getMessage()]
    steps = int(line.split("generation stopped at step ")[1].split()[0])
    # The reader took one piece; the bounded queue let generation run only a few ahead.
    assert steps <= 1 + STREAM_QUEUE_SIZE + 2 < 80, line
    assert not [t for t in threading.enumerate() if t.name.startswith("mlpack-generate-")]


def test_streaming_refuses_what_it_cannot_stream(
    long_generator: Path, folders: dict[str, Path]
) -> None:
    generator = _load(long_generator, extra={"task": "text-generation"})
    classifier = _load(folders["classifier"])

    async def drain(model: HuggingFaceModel, request: InferenceRequest) -> None:
        async for _ in model.predict_stream(_one(request)):
            pass

    with pytest.raises(InvalidRequest, match="one prompt per request, got 2"):
        asyncio.run(drain(generator, _texts(["a", "b"])))
    with pytest.raises(InvalidRequest, match="max_new_tokens 600 is above"):
        asyncio.run(drain(generator, _texts(["a"], max_new_tokens=600)))
    with pytest.raises(InvalidRequest, match="only text-generation streams"):
        asyncio.run(drain(classifier, _texts(["a"])))


def _events(lines: Any) -> Any:
    """The JSON payloads of a server-sent event stream, as they arrive."""
    for line in lines:
        if line.startswith("data: "):
            yield json.loads(line[len("data: ") :])


@pytest.mark.e2e
def test_generation_streams_over_rest_infer_stream(tmp_path: Path, long_generator: Path) -> None:
    """A real ``mlpack start``: pieces arrive as server-sent events; leaving stops generation."""
    import time

    import httpx

    from tests.helpers.server import start_server

    root = tmp_path / "models"
    folder = shutil.copytree(long_generator, root / "writer")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "writer",
                "implementation": "mlpack_huggingface.HuggingFaceModel",
                "parameters": {"extra": {"task": "text-generation", "max_new_tokens_limit": 80}},
            }
        )
    )
    server = start_server(root, tmp_path, timeout=180, env={"HF_HUB_OFFLINE": "0"})
    url = f"{server.url}/v2/models/writer/infer_stream"

    def body(max_new_tokens: int) -> dict[str, Any]:
        return {
            "id": "story-1",
            "parameters": {"max_new_tokens": max_new_tokens, "do_sample": False},
            "inputs": [{"name": "args", "shape": [1], "datatype": "BYTES", "data": ["the movie"]}],
        }

    try:
        with httpx.stream("POST", url, json=body(6), timeout=60) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = list(_events(response.iter_lines()))
        assert all(e["id"] == "story-1" and e["model_name"] == "writer" for e in events)
        pieces = [e["outputs"][0]["data"][0] for e in events]
        expected = reference(
            "text-generation",
            long_generator,
            ["the movie"],
            max_new_tokens=6,
            do_sample=False,
            return_full_text=False,
        )[0]["generated_text"]
        assert len(pieces) >= 2 and _words("".join(pieces)) == _words(expected)

        refused = httpx.post(url, json=body(500), timeout=60)
        assert refused.status_code == 400 and "max_new_tokens" in refused.json()["error"]

        # The client leaves after the first piece: the server stops generating.
        with httpx.stream("POST", url, json=body(80), timeout=60) as response:
            first = next(_events(response.iter_lines()))
            assert first["outputs"][0]["name"] == "generated_text"
        line = ""
        for _ in range(600):  # bounded: up to about a minute on a loaded machine
            found = [x for x in server.log().splitlines() if "stream closed after" in x]
            if found:
                line = found[0]
                break
            time.sleep(0.1)
        assert line, server.log()
        steps = int(line.split("generation stopped at step ")[1].split()[0])
        assert steps < 80, line
    finally:
        server.stop()
