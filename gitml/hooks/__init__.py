"""Git hooks that make gitml part of plain ``git commit`` and ``git push``.

A shell package, like ``cli/``: it speaks to people through git's hook
protocol (exit codes, stderr), and calls the domain (``tracking``, ``sync``)
for the work. ``gitml.cli.hooks`` prints what these functions return; nothing
here prints or exits.

- ``install``: put the hook scripts (``scripts/``, package data) into the
  repository's hooks directory, chaining hooks that are already there.
- ``postcommit``: log a run from params/metrics files a commit changed.
- ``prepush``: push runs, notes and registry tags alongside the branch.
- ``config``: the ``gitml.hooks.*`` git config keys, in one table.

Importing this package is cheap (standard library only); the hooks' work
imports the tracking layer when it has something to do.
"""

from __future__ import annotations

HOOK_NAMES = ("post-commit", "pre-push")
