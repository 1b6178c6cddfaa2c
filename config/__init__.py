"""Configuration, the bottom floor: the one typed settings object and the process set-up."""
