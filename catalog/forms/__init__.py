"""Forms of the catalog, one module per feature."""
