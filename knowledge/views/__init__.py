"""Pages of the knowledge bases, one module per feature; their routes are in
``knowledge/urls.py``."""
