"""The observe pages."""
