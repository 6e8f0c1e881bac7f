"""The agent pages: the list and new agent (``agents.py``), the builder (``builder.py``), and
the versions list and deletion (``versions.py``)."""
