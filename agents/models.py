"""Agent specs, tools and traces arrive with the agents issue."""
