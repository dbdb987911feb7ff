"""A real program used as a `command` backend in the end-to-end tests.

fake_agent.py echo        stream the prompt's <task> back in a few chunks, then "done"
fake_agent.py slow PIDFILE  write its pid and a grandchild's pid to PIDFILE, then emit a
                          chunk every 0.1 s for a minute (cancellation must kill both)
fake_agent.py fail        write to stderr and exit 3
fake_agent.py lines FILE  write FILE's content as the output (a linter's report, scripted)
"""

import os
import re
import subprocess
import sys
import time


def main() -> int:
    mode = sys.argv[1]
    prompt = sys.stdin.read()
    if mode == "echo":
        match = re.search(r"<task>\n?(.*?)\n?</task>", prompt, re.S)
        task = match.group(1).strip() if match else ""
        for word in ["echo:", *task.split()]:
            sys.stdout.write(word + " ")
            sys.stdout.flush()
            time.sleep(0.02)
        sys.stdout.write(f"\nprompt-bytes={len(prompt.encode())}\ndone\n")
        return 0
    if mode == "slow":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(sys.argv[2], "w") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
        for i in range(600):
            sys.stdout.write(f"tick {i}\n")
            sys.stdout.flush()
            time.sleep(0.1)
        return 0
    if mode == "lines":
        with open(sys.argv[2], encoding="utf-8") as f:
            sys.stdout.write(f.read())
        return 0
    if mode == "fail":
        sys.stderr.write("the model is unavailable\n")
        return 3
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
