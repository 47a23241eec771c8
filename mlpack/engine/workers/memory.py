"""How much memory a process uses, from Linux's ``/proc/<pid>/smaps_rollup``.

PSS (proportional set size) splits each shared page between the processes that map it,
so the PSS of a zygote and its workers adds up to what they really use together; RSS
counts a shared page once per process.
"""

from __future__ import annotations

from pathlib import Path


def memory_figures(pid: int | str = "self") -> dict[str, int]:
    """``Rss``, ``Pss``, ``Private_Clean`` ... of process ``pid`` in bytes ({} when unreadable)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    figures: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            figures[name.strip()] = int(parts[0]) * 1024
    return figures


def pss_bytes(pid: int | str = "self") -> int:
    """The proportional set size of ``pid`` in bytes (0 when unreadable)."""
    return memory_figures(pid).get("Pss", 0)


def rss_bytes(pid: int | str = "self") -> int:
    """The resident set size of ``pid`` in bytes (0 when unreadable)."""
    return memory_figures(pid).get("Rss", 0)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def uss_bytes(pid: int | str = "self") -> int:
    """The unique set size of ``pid`` in bytes: pages no other process maps (0 when unreadable)."""
    figures = memory_figures(pid)
    return figures.get("Private_Clean", 0) + figures.get("Private_Dirty", 0)
