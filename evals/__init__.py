"""Evaluating flows and agents: datasets of cases, evaluators, evaluation runs, comparisons."""
