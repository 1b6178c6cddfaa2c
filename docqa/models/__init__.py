"""docqa/models."""
