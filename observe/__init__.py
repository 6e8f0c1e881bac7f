"""Observing what runs: the runs list and search, dashboards, alerts, metrics and tracing."""
