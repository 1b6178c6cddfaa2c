"""docqa/cli."""
