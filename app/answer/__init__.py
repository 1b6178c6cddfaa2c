"""Answer building: the versioned prompt, citation parsing and checking, confidence scoring."""
