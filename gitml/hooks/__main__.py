"""``python -m gitml.hooks post-commit|pre-push``: the installed hook scripts' entry point."""

import os
import sys

from gitml.hooks.entry import main

code = main(sys.argv[1:])
sys.stdout.flush()
sys.stderr.flush()
# Everything the hook wrote is committed by now (runs, notes). Skipping the
# interpreter's teardown (module cleanup, libgit2 shutdown) saves ~40 ms on
# every commit that logs a run.
os._exit(code)
