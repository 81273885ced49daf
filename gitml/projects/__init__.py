"""Projects: MLproject files, `gitml run` in a snapshot worktree, environments."""
