"""One `ComponentResource` per module: the shared platform, an event pipeline, a data endpoint."""
