"""Agent programs that attack the server from inside a run (used as ``command`` backends).

agents.py stdout-attack      write junk straight to the server's own fd 1 (via /proc), then
                             "ok" on its own stdout: the LSP stream must stay clean
agents.py leak-fail VAR      write the value of $VAR (a secret) to stderr and exit 1: the
                             failure message must not carry it
agents.py echo-env           write the names of its environment variables, one per line
agents.py slow-chunks N D    read stdin, then write "chunk-i" N times, D seconds apart
"""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "stdout-attack":
        sys.stdin.read()
        for target in (f"/proc/{os.getppid()}/fd/1", "/dev/stdout"):
            try:
                with open(target, "w") as f:
                    f.write("Content-Length: 5\r\n\r\nJUNK!\nnot a frame\n")
            except OSError:
                pass
        sys.stdout.write("ok\n")
        return 0
    if mode == "leak-fail":
        sys.stdin.read()
        sys.stderr.write(f"auth failed for key {os.environ.get(args[0], 'unset')}\n")
        return 1
    if mode == "echo-env":
        sys.stdin.read()
        sys.stdout.write("\n".join(sorted(f"{k}={v}" for k, v in os.environ.items())))
        return 0
    if mode == "slow-chunks":
        sys.stdin.read()
        for i in range(int(args[0])):
            sys.stdout.write(f"chunk-{i}\n")
            sys.stdout.flush()
            time.sleep(float(args[1]))
        return 0
    sys.stderr.write(f"unknown mode {mode}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
