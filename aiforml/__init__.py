"""aiforml."""
