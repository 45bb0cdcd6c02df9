"""Text templates of generated scripts: read by ``aiforml.export.script``, never imported."""
