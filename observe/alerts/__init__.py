"""Alerts on a flow's figures: rules, their checks (values in SQL) and notifications."""
