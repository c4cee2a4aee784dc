"""Worker processes of a pool end when the run that started them is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """\
import os, sys, time
from qualpipe.executors.base import process_pool

def pid():
    time.sleep(0.3)
    return os.getpid()

if __name__ == "__main__":
    with process_pool(2) as pool:
        pids = {f.result() for f in [pool.submit(pid) for _ in range(4)]}
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(120)
"""

# the parent is killed right after it started its workers, before they are set up
EARLY_KILL = """\
import os, signal, time
from qualpipe.executors.base import process_pool

if __name__ == "__main__":
    pool = process_pool(2)
    pool.submit(time.sleep, 0.1)
    print(" ".join(map(str, sorted(pool._processes))), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("script_text", [SCRIPT, EARLY_KILL], ids=["working", "starting"])
def test_pool_workers_exit_when_their_parent_is_killed(tmp_path: Path, script_text: str) -> None:
    script = tmp_path / "pool.py"
    script.write_text(script_text, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids and all(_alive(p) for p in pids)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], "workers outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
