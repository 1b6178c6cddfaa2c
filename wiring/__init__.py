"""The composition root: builds the objects of every floor below from the settings."""
