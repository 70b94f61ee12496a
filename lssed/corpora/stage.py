"""The corpus stage: ``corpus.*`` -> ``<out>/corpus/<id>-<digest>/manifest.parquet`` (+ rejects).

The key digests the corpus config, so a rerun with the same config finds the committed
``_SUCCESS.json`` and returns at once (``skipped=True``). ``demo`` synthesises the corpus
(speech + noise in audio/video files) into storage beside the manifest; other corpora are
read from ``corpus.root`` with :func:`lssed.corpora.prepare`. Committed only when
``rows + rejected == input rows``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lssed.config import Config, config_to_dict, digest
from lssed.corpora.base import PreparedCorpus
from lssed.storage import Storage, stage_output

log = logging.getLogger(__name__)

STAGE = "corpus"


@dataclass(frozen=True)
class CorpusResult:
    """The committed manifest: ``<out>/corpus/<key>/manifest.parquet`` (+ rejects)."""

    uri: str
    manifest_uri: str
    rejects_uri: str
    digest: str  # the stage key, <corpus id (default: its name)>-<config digest>
    input_rows: int
    rows: int
    rejected: int
    skipped: bool


def corpus_stage(cfg: Config, *, out: Storage, force: bool = False) -> CorpusResult:
    """The manifest in storage, keyed by the corpus config; skipped when committed."""
    c = cfg.corpus
    key = f"{c.id or c.name}-{digest(c)}"
    stage = stage_output(out, STAGE, key)
    manifest_uri = stage.storage.join_uri("manifest.parquet")
    rejects_uri = stage.storage.join_uri("manifest.rejects.parquet")
    if stage.is_committed() and not force:
        marker = stage.marker()
        log.info("corpus: committed at %s (%d rows), skipping", stage.uri, marker["rows"])
        return CorpusResult(stage.uri, manifest_uri, rejects_uri, key, marker["input_rows"], marker["rows"],
                            marker["rejected"], skipped=True)
    stage.clear()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lssed-corpus-") as tmp:
        prepared = _prepare(cfg, stage.storage, Path(tmp))
        _write_manifest(prepared, stage.storage, Path(tmp))
    rows, rejected = prepared.manifest.num_rows, prepared.rejects.num_rows
    if rows + rejected != prepared.input_rows:  # never commit a manifest that lost rows
        raise RuntimeError(f"corpus {c.name}: {rows} rows + {rejected} rejects != {prepared.input_rows} input rows")
    stage.commit({
        "config": config_to_dict(c),
        "input_rows": prepared.input_rows,
        "rows": rows,
        "rejected": rejected,
        "seconds": round(time.perf_counter() - t0, 3),
    })
    log.info("corpus: %d utterances (%d rejected) -> %s", rows, rejected, manifest_uri)
    return CorpusResult(stage.uri, manifest_uri, rejects_uri, key, prepared.input_rows, rows, rejected, skipped=False)


def _prepare(cfg: Config, dest: Storage, tmp: Path) -> PreparedCorpus:
    from lssed.corpora import prepare_config

    c = cfg.corpus
    if c.name != "demo":
        return prepare_config(c, storage=dest)  # an s3:// corpus.root is reached like the output
    from lssed.corpora.demo import make_demo_corpus

    # Local storage: the media live in storage beside the manifest. S3: generate locally,
    # upload, and point the manifest at the uploaded objects.
    demo_dir = tmp / "demo" if dest.is_s3 else Path(dest.path("demo"))
    csv = make_demo_corpus(demo_dir, speakers=c.speakers, per_class=c.per_class, seed=c.seed,
                           voice_offset=c.voice_offset, snr_db=(c.snr_db[0], c.snr_db[1]))
    prepared = prepare_config(c, csv)
    return upload_media(prepared, demo_dir, dest.child("demo")) if dest.is_s3 else prepared


def _write_manifest(prepared: PreparedCorpus, dest: Storage, tmp: Path) -> None:
    from lssed.corpora import write_manifest

    m_path, r_path = write_manifest(prepared, tmp / "manifest.parquet")
    dest.write_bytes(Path(m_path).read_bytes(), "manifest.parquet")
    dest.write_bytes(Path(r_path).read_bytes(), "manifest.rejects.parquet")


def upload_media(prepared: PreparedCorpus, media_dir: Path, dest: Storage) -> PreparedCorpus:
    """Upload the media under ``media_dir`` that the manifest names; rewrite ``media_uri`` to them."""
    import pyarrow as pa

    media_dir = media_dir.resolve()
    uris = []
    uploaded: dict[str, str] = {}
    for uri in prepared.manifest.column("media_uri").to_pylist():
        if uri not in uploaded:
            local = Path(uri.removeprefix("file://")).resolve()
            rel = local.relative_to(media_dir).as_posix()
            dest.write_bytes(local.read_bytes(), rel)
            uploaded[uri] = dest.join_uri(rel)
        uris.append(uploaded[uri])
    table = prepared.manifest
    idx = table.schema.get_field_index("media_uri")
    table = table.set_column(idx, table.schema.field(idx), pa.array(uris, type=table.schema.field(idx).type))
    log.info("corpus: uploaded %d media files to %s", len(uploaded), dest.uri)
    return dataclasses.replace(prepared, manifest=table)
