"""A JSON-RPC peer that answers with prebuilt bytes: the floor for moving one answer over stdio.

``python -m agentls.bench.bare_transport RESULT_FILE`` reads ``Content-Length`` frames on stdin and
answers ``bench/answer`` with the JSON in RESULT_FILE as its result (every other request with
``null``), in the frame the server writes; it ends at ``exit`` or at the end of input. The bench
asks it for the same bytes an ``agentls.context.preview`` answer carried, through the same client,
so the difference between the two is what the server adds to moving those bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson


def main(argv: list[str]) -> int:
    """Serve until ``exit`` or the end of input."""
    result = Path(argv[0]).read_bytes()
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    while True:
        length = 0
        while True:
            line = stdin.readline()
            if not line:
                return 0
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        message = orjson.loads(stdin.read(length))
        method = message.get("method")
        if method == "exit":
            return 0
        if "id" not in message:
            continue
        answer = result if method == "bench/answer" else b"null"
        body = b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (orjson.dumps(message["id"]), answer)
        out.write(b"Content-Length: %d\r\n\r\n" % len(body))
        out.write(body)
        out.flush()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
