"""Writes of knowledge bases, documents and chunks, one module per feature."""
