"""``python -m agentls.bench``: the bench without going through the ``agentls`` command line."""

import sys

from agentls.bench import main

raise SystemExit(main(sys.argv[1:]))
