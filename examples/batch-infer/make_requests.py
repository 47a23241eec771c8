"""Write requests.jsonl: one V2 inference request per line, each with an id and 1-4 rows.

python make_requests.py            # 1000 requests
python make_requests.py -n 50 -o small.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LOW, HIGH = [4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5]  # iris feature ranges


def make_requests(count: int, destination: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with destination.open("w", encoding="utf-8") as out:
        for index in range(count):
            rows = rng.uniform(LOW, HIGH, size=(int(rng.integers(1, 5)), 4)).round(1)
            request = {
                "id": f"req-{index}",
                "inputs": [
                    {
                        "name": "x",
                        "shape": list(rows.shape),
                        "datatype": "FP64",
                        "data": rows.reshape(-1).tolist(),
                    }
                ],
            }
            out.write(json.dumps(request) + "\n")
    return destination


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write a JSONL file of iris inference requests.")
    parser.add_argument("-n", "--count", type=int, default=1000)
    parser.add_argument("-o", "--output", type=Path, default=HERE / "requests.jsonl")
    args = parser.parse_args()
    print(f"wrote {make_requests(args.count, args.output)}")
