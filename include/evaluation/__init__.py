"""`make eval`: labelled incidents, the DAG's analysis run over them, and the figures that score it."""
