"""The run-time of flows: the executor's state machine over a run, running one node on a
worker, enqueueing, failure policy, waiting on a run, and what nodes evaluate while they run
(conditions, templates and their sandboxes, the code sandbox).

Nothing is imported here on purpose: a template renderer process
(``python -m flows.runtime.template_renderer``) imports this package before Django is set up."""
