"""The editor of flows: a node's settings form and panel, the palette of node types, and how a
graph is shown to a person (what changed between two graphs, secrets masked)."""
