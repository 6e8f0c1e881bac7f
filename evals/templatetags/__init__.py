"""Template tags of the evaluation pages."""
