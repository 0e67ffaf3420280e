"""Process-tree helpers over Linux /proc, shared by the benchmark's memory sampler and the kill tests."""

from __future__ import annotations

import os


def descendants(pid: int) -> list[int]:
    """All descendant pids of pid (via /proc/<pid>/task/*/children); [] where /proc is not available."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    kids = [int(x) for x in fh.read().split()]
                out += kids
                todo += kids
        except OSError:  # the process ended while we walked: its children are gone too
            continue
    return out


def cmdline(pid: int) -> bytes:
    """The raw command line of pid (NUL-separated), b"" when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""
