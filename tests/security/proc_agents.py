"""Small real programs used as ``command`` agents by the process security tests.

proc_agents.py setsid-family PIDFILE   start a grandchild that calls setsid (a new session,
                                       out of the run's process group) and sleeps; write
                                       "<pid> <grandchild pid>" to PIDFILE, "ready", then wait
proc_agents.py hog MB                  allocate MB mebibytes, then write "allocated"
proc_agents.py spin                    burn CPU forever
proc_agents.py files N                 open N files at once, then write "opened"
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "setsid-family":
        grandchild = subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"],
            start_new_session=True,  # setsid(): its own session and process group
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        Path(args[0]).write_text(f"{os.getpid()} {grandchild.pid}\n")
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            time.sleep(1)
    if mode == "hog":
        block = bytearray(int(args[0]) * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        sys.stdout.write("allocated\n")
        return 0
    if mode == "spin":
        while True:
            pass
    if mode == "files":
        handles = [open(os.devnull) for _ in range(int(args[0]))]  # noqa: SIM115
        sys.stdout.write(f"opened {len(handles)}\n")
        return 0
    sys.stderr.write(f"unknown mode {mode}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
