"""Scoring finished runs on other feature sets: ``lssed evaluate`` and the cross-corpus stage.

* :mod:`lssed.evaluate.scoring` — one run (or an imported checkpoint) on one split of one
  feature set -> ``<run>/evaluations/<corpus>.json`` and ``<corpus>.predictions.parquet``.
* :mod:`lssed.evaluate.stage` — the workflow's cross-corpus stage: every run on every other
  corpus's test split (the report's Table 4).
"""
