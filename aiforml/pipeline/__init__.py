"""The six-step pipeline: defaults, the sandbox child's harness, trusted checks, evaluation.

Steps: 1 load data (locked), 2 create target (optional override), 3 create features
(override), 4 define model (override), 5 define cross-validation (optional override),
6 run optimization and metrics (locked). ``defaults`` holds the contract and default
sources, ``harness`` runs inside the sandbox, ``checks`` and ``evaluator`` are trusted.

Importing this package stays light; import ``aiforml.pipeline.evaluator`` for the Evaluator.
"""
