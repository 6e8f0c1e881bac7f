"""The node types the agents app adds to the flow editor's library (``flows.nodes.register``)."""
