"""The evaluation pages: datasets and their cases, evaluation runs, comparisons."""
