"""Pages of the catalog, one module per feature, each with its own ``urlpatterns``."""
