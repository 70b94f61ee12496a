"""Arrow schemas of the tables that stages exchange (see docs/shards.md).

The manifest is the corpora stage's output; shards and quarantine rows are the preprocess
stage's. Keep these the single definition: adapters, preprocess, import-features and the
trainer all read them from here.
"""

from __future__ import annotations

import pyarrow as pa

SPLITS: tuple[str, ...] = ("train", "val", "test")

MANIFEST_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("corpus", pa.string()),
        ("media_uri", pa.string()),
        ("start_s", pa.float64()),  # null: from the start of the file
        ("end_s", pa.float64()),  # null: to the end of the file
        ("speaker", pa.string()),
        ("gender", pa.string()),  # "F" | "M" | null
        ("age", pa.string()),  # age group as the corpus gives it, or null
        ("session", pa.string()),
        ("label", pa.string()),  # full label set name (labels.LSSED_LABELS or the corpus's own)
        ("label4", pa.int8()),  # benchmark index 0-3 or null
        ("split", pa.string()),  # train | val | test
        ("fold", pa.int8()),  # 0..k-1 with corpus.split=folds, else null (old manifests lack it)
        ("text", pa.string()),
        # a numeric per-utterance target (DAIC-WOZ: the participant's PHQ-8 score), else null;
        # manifests written before it lack it
        ("score", pa.float32()),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),  # position in the corpus's own listing
        ("utt_id", pa.string()),
        ("source", pa.string()),  # file / line the row came from
        ("reason", pa.string()),
    ]
)

# Columns carried from the manifest into every shard row unchanged.
CARRIED_COLUMNS: tuple[str, ...] = (
    "utt_id",
    "corpus",
    "speaker",
    "gender",
    "age",
    "session",
    "label",
    "label4",
    "split",
    "fold",
    "score",
    "start_s",
    "end_s",
)

SHARD_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("corpus", pa.string()),
        ("speaker", pa.string()),
        ("gender", pa.string()),
        ("age", pa.string()),
        ("session", pa.string()),
        ("label", pa.string()),
        ("label4", pa.int8()),
        ("split", pa.string()),
        ("fold", pa.int8()),  # 0..k-1 with corpus.split=folds, else null; shards written before it lack it
        ("score", pa.float32()),  # numeric target (DAIC-WOZ: PHQ-8 score) or null; older shards lack it
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("sample_rate", pa.int32()),
        ("n_mels", pa.int32()),
        ("n_frames", pa.int32()),
        ("logmel", pa.list_(pa.float32())),  # row-major (n_mels, n_frames)
        ("waveform", pa.list_(pa.int16())),  # denoised, gained, 16 kHz PCM; null if imported
        ("clipped_samples", pa.int32()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("utt_id", pa.string()),
        ("media_uri", pa.string()),
        ("stage", pa.string()),  # decode | denoise | features | ...
        ("error", pa.string()),
    ]
)
