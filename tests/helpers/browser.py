"""Headless Chromium for tests: screenshots, the page's own network requests, PNG pixels."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest


def chromium_or_skip() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("MLPACK_REQUIRE_BROWSER") == "1":
        pytest.fail("MLPACK_REQUIRE_BROWSER=1 but chromium is not installed")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


@dataclass
class Shot:
    png: Path
    page_requests: list[str]  # URLs the page itself asked for (not the browser's own traffic)


def screenshot(
    tmp_path: Path, url: str, width: int = 1280, height: int = 900, budget_ms: int = 8000
) -> Shot:
    """Load ``url`` headless (outside names do not resolve), screenshot it, list its requests."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    png = tmp_path / f"shot-{time.monotonic_ns()}.png"
    netlog = tmp_path / f"net-{time.monotonic_ns()}.json"
    command = [
        chromium_or_skip(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        f"--log-net-log={netlog}",
        f"--virtual-time-budget={budget_ms}",
        f"--window-size={width},{height}",
        f"--screenshot={png}",
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and png.exists(), result.stderr[-2000:]
    return Shot(png, page_requests(netlog))


def page_requests(netlog: Path) -> list[str]:
    """URLs requested with a page as initiator (Chromium's own update/account calls have none)."""
    try:
        log = json.loads(netlog.read_text())
    except ValueError:  # the log may miss its closing brackets when the browser exits
        text = netlog.read_text().rstrip().rstrip(",")
        log = json.loads(text + "]}")
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        initiator = params.get("initiator")
        if "url" in params and initiator not in (None, "not an origin"):
            urls.append(params["url"])
    return urls


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filt == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    # Normalise to RGB triples.
    if channels == 4:
        rows = [bytes(b for i, b in enumerate(row) if i % 4 != 3) for row in rows]
    return width, height, rows


def colours_in(
    rows: list[bytes], box: tuple[int, int, int, int]
) -> dict[tuple[int, int, int], int]:
    """Pixel counts per RGB colour inside ``box`` = (x, y, width, height)."""
    x0, y0, w, h = box
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows[y0 : y0 + h]:
        for x in range(x0, min(x0 + w, len(row) // 3)):
            rgb = (row[3 * x], row[3 * x + 1], row[3 * x + 2])
            counts[rgb] = counts.get(rgb, 0) + 1
    return counts


def near(counts: dict[tuple[int, int, int], int], colour: str, tolerance: int = 40) -> int:
    """Pixels within ``tolerance`` (per channel) of a ``#rrggbb`` colour."""
    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return sum(
        n
        for rgb, n in counts.items()
        if all(abs(a - b) <= tolerance for a, b in zip(rgb, target, strict=True))
    )
