"""Print a generated text token by token, as the server streams it.

python client.py "the keeper" --max-tokens 40 --seed 3            # REST, server-sent events
python client.py "the keeper" --grpc localhost:8081                # gRPC ModelStreamInfer
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from mlpack.client import Client, ClientError


def rest(url: str, model: str, prompt: str, parameters: dict[str, Any]) -> None:
    with Client(url) as client:
        for chunk in client.generate_stream(model, prompt, parameters):
            print(chunk["text_output"], end="", flush=True)


async def grpc(target: str, model: str, prompt: str, parameters: dict[str, Any]) -> None:
    from mlpack.client.grpc import AsyncGrpcClient

    async with AsyncGrpcClient(target) as client:
        async for chunk in client.generate_stream(model, prompt, parameters):
            print(chunk["text_output"], end="", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="the keeper")
    parser.add_argument("--url", default="localhost:8080", help="REST address (default)")
    parser.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC at this address instead")
    parser.add_argument("--model", default="markov")
    parser.add_argument("--max-tokens", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    parameters = {"max_tokens": args.max_tokens, "seed": args.seed}
    print(args.prompt, end="", flush=True)
    try:
        if args.grpc:
            asyncio.run(grpc(args.grpc, args.model, args.prompt, parameters))
        else:
            rest(args.url, args.model, args.prompt, parameters)
    except ClientError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
