"""The benchmark's memory sampler counts the JVM's worker processes, not momentary copies of the JVM itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for the JVM: it forks a copy of itself (same command line, as a fork before exec is) and starts one
# real child process with a command line of its own (as a Python worker is).
PARENT = """
import os, subprocess, sys, time
if os.fork() == 0:
    time.sleep(30); os._exit(0)
# Wait for the real child to run its own code: Popen returns once exec has closed the child's close-on-exec pipe,
# which the kernel does before it sets the new command line, so a loaded machine could still read it empty.
child = subprocess.Popen([sys.executable, "-c", "print('up', flush=True); import time; time.sleep(30)"],
                         stdout=subprocess.PIPE)
child.stdout.readline()
print("ready", flush=True)  # both children are in their final shape now
time.sleep(30)
"""


def _bench():
    sys.path.insert(0, str(ROOT / "scripts"))
    return load_script("bench")


def test_worker_pids_skip_copies_of_the_jvm():
    from clinlake.procs import cmdline, descendants

    bench = _bench()
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        # Wait for the stand-in to say both children exist: polling for two descendants raced the child's exec
        # (a loaded CI machine saw the real child still carrying the parent's command line).
        assert parent.stdout.readline().strip() == b"ready"
        kids = descendants(parent.pid)
        assert len(kids) == 2
        workers = bench.worker_pids(parent.pid, cmdline(parent.pid))
        assert len(workers) == 1
        assert cmdline(workers[0]) != cmdline(parent.pid) and b"time.sleep(30)" in cmdline(workers[0])
    finally:
        for pid in descendants(parent.pid):
            subprocess.run(["kill", str(pid)], check=False)
        parent.kill()
        parent.wait(10)
