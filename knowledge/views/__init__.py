"""Pages of the knowledge bases, one module per feature, each with its own ``urlpatterns``."""
