"""Review: metric and param diffs between commits, branches and runs; pull-request reports."""
