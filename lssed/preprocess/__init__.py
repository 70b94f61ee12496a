"""Preprocessing: media -> 16 kHz mono -> denoise -> gain -> log-mel -> Parquet shards (Ray Data).

Pure functions live in ``decode``, ``denoise`` and ``chain``; ``pipeline`` is the only Ray
glue; ``stage.preprocess`` is the stage function; ``import_features`` turns precomputed
spectrograms (LSSED's released features) into the same shards.
"""
