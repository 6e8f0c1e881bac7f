"""Pages of the catalog, one module per feature; their routes are in ``catalog/urls.py``."""
