"""A stand-in for a model: reads an agentls prompt on stdin and outlines the attached files.

It shows the shape of a `command` backend: the prompt arrives on stdin, the answer is written to
stdout as it is produced, and a non-zero exit code fails the run with stderr as the reason.
"""

import re
import sys

prompt = sys.stdin.read()
files = re.findall(r'<(file|selection) path="([^"]+)"[^>]*>\n(.*?)</\1>', prompt, re.S)
task = re.search(r"<task>\n?(.*?)\n?</task>", prompt, re.S)
print(f"# Outline ({len(files)} attached)\n", flush=True)
if task and task.group(1).strip():
    print(f"Task: {task.group(1).strip()}\n", flush=True)
for kind, path, body in files:
    print(f"## {path}" + (" (selection)" if kind == "selection" else ""), flush=True)
    for number, line in enumerate(body.splitlines(), 1):
        match = re.match(r"\s*(def|class|async def)\s+(\w+)", line)
        if match:
            print(f"- line {number}: {match.group(1)} `{match.group(2)}`", flush=True)
    print(flush=True)
