"""Check responses.jsonl against requests.jsonl with the model's own predict.

    python check.py                    # requests.jsonl, responses.jsonl, model/model.joblib

Exit code 0 when every request has exactly one response, in order, with the right classes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import joblib
import numpy as np

HERE = Path(__file__).resolve().parent


def check(requests: Path, responses: Path, model: Path) -> list[str]:
    """Problems found (an empty list means the job's output is complete and correct)."""
    estimator = joblib.load(model)
    request_lines = requests.read_text(encoding="utf-8").splitlines()
    response_lines = responses.read_text(encoding="utf-8").splitlines()
    problems = []
    if len(request_lines) != len(response_lines):
        problems.append(f"{len(request_lines)} requests but {len(response_lines)} responses")
    for number, (request_line, response_line) in enumerate(
        zip(request_lines, response_lines, strict=False), 1
    ):
        request, response = json.loads(request_line), json.loads(response_line)
        if response.get("id") != request["id"]:
            problems.append(f"line {number}: id {response.get('id')!r}, expected {request['id']!r}")
            continue
        if "outputs" not in response:
            problems.append(f"line {number} ({request['id']}): no outputs: {response}")
            continue
        tensor = request["inputs"][0]
        rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        predicted = next(o for o in response["outputs"] if o["name"] == "predict")["data"]
        if predicted != estimator.predict(rows).tolist():
            problems.append(f"line {number} ({request['id']}): predict {predicted}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=Path, default=HERE / "requests.jsonl")
    parser.add_argument("--responses", type=Path, default=HERE / "responses.jsonl")
    parser.add_argument("--model", type=Path, default=HERE / "model" / "model.joblib")
    args = parser.parse_args()
    problems = check(args.requests, args.responses, args.model)
    for problem in problems[:20]:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"all {len(args.requests.read_text().splitlines())} responses present, in order and correct"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
