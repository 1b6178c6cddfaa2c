"""docqa."""
