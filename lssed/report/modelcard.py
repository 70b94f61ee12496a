"""Model cards: ``MODEL_CARD.md`` beside every finished run and beside every export.

A card says what the model was trained on (corpora, hours, speakers, label distribution, from
the run's ``results.json`` and the feature set's ``_SUCCESS.json`` and shards), how it was
evaluated (split protocol, speaker independence), the recipe, the metrics with confusion
matrices, its intended use and limits, and the fields only the user can fill (data licence).
An export's card is ``<FILE>.MODEL_CARD.md`` (``model.onnx.MODEL_CARD.md``): the full file
name, so the ONNX and TorchScript exports of one run keep a card each.

:func:`render_card` is pure (metadata in, Markdown out); the readers around it are best effort:
a feature set that cannot be read leaves its fields "not recorded", never a failed run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from lssed.storage import SUCCESS_MARKER, Storage

log = logging.getLogger(__name__)

CARD_FILE = "MODEL_CARD.md"
EXPORT_CARD_SUFFIX = ".MODEL_CARD.md"
UNKNOWN = "not recorded"


def export_card_path(out: str | Path) -> Path:
    """Where an export's card goes: the exported file's full name + ``.MODEL_CARD.md``."""
    return Path(str(out) + EXPORT_CARD_SUFFIX)


def training_data_summary(features: Storage) -> dict[str, Any]:
    """Corpora, hours, speakers and labels per split of a committed feature set (best effort)."""
    out: dict[str, Any] = {"features_uri": features.uri}
    try:
        marker = features.read_json(SUCCESS_MARKER)
    except Exception as exc:  # noqa: BLE001 - a moved or unreachable feature set: the card says so
        log.warning("model card: could not read %s (%s); its data fields stay %r",
                    features.join_uri(SUCCESS_MARKER), exc, UNKNOWN)
        return out
    stats = marker.get("stats") or {}
    config = marker.get("config") or {}
    if "output_audio_h" in stats:
        out["hours"] = float(stats["output_audio_h"])
    if config.get("preprocess") is not None:
        out["preprocess"] = dict(config["preprocess"])
    for key in ("rows_by_label", "rows_by_split"):
        if key in stats:
            out[key] = dict(stats[key])
    try:
        out.update(_shard_counts(features, (marker.get("layout") or {}).get("shards", "shards")))
    except Exception as exc:  # noqa: BLE001
        log.warning("model card: could not read the shards of %s (%s)", features.uri, exc)
    return out


def _shard_counts(features: Storage, shards_dir: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    speakers: dict[str, set[str]] = {}
    labels: dict[str, Counter] = {}
    corpora: set[str] = set()
    for path in features.list(shards_dir):
        if not path.endswith(".parquet"):
            continue
        t = pq.read_table(path, columns=["corpus", "speaker", "split", "label4"], filesystem=features.filesystem)
        for corpus, speaker, split, label in zip(*(t.column(c).to_pylist() for c in t.column_names)):
            corpora.add(str(corpus))
            if label is None:
                continue  # outside the benchmark's classes: never trained or scored on
            speakers.setdefault(split, set()).add(str(speaker))
            labels.setdefault(split, Counter())[int(label)] += 1
    shared = set.union(set(), *[a & b for x, a in speakers.items() for y, b in speakers.items() if x < y])
    return {"corpora": sorted(corpora), "shared_speakers": len(shared),
            "speakers_by_split": {s: len(v) for s, v in sorted(speakers.items())},
            "labels_by_split": {s: dict(sorted(c.items())) for s, c in sorted(labels.items())}}


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _metrics_section(metrics: Mapping[str, Any], class_names: list[str]) -> list[str]:
    if not metrics:
        return [f"No metrics are recorded for this model (an imported checkpoint): evaluate it with "
                "`lssed evaluate` on a test set of your own before relying on it."]
    lines = _table(["set", "n", "UA", "WA", "macro-F1"],
                   [[name, m.get("n", ""), f"{m['ua']:.4f}", f"{m['wa']:.4f}", f"{m['macro_f1']:.4f}"]
                    for name, m in metrics.items()])
    lines.append("")
    lines.append("UA: unweighted accuracy (mean per-class recall); WA: overall accuracy.")
    for name, m in metrics.items():
        confusion = m.get("confusion") or []
        if not confusion:
            continue
        lines += ["", f"Confusion matrix, {name} (rows: true class, columns: predicted):", ""]
        lines += _table(["true \\ predicted", *class_names],
                        [[class_names[i] if i < len(class_names) else i, *row] for i, row in enumerate(confusion)])
    return lines


def render_card(meta: Mapping[str, Any], *, artifact: str | None = None) -> str:
    """The card's Markdown from export metadata (:func:`lssed.models.export.build_metadata`).

    ``meta["recipe"]`` (the run's train settings) and ``meta["protocol"]`` are optional extras a
    run provides; ``artifact`` names the exported file the card describes.
    """
    class_names = list(meta["class_names"])
    data = dict(meta.get("training_data") or {})
    recipe = dict(meta.get("recipe") or {})
    corpora = list(meta.get("train_corpora") or data.get("corpora") or [])
    title = meta.get("run_name") or meta["model"]
    lines = [f"# Model card: {title}", ""]
    if artifact:
        lines += [f"Describes the exported file `{artifact}` (`lssed models export`).", ""]
    lines += [
        "## Model",
        "",
        f"- Architecture: `{meta['model']}`" + (f" with {meta['model_kwargs']}" if meta.get("model_kwargs") else ""),
        f"- Classes, in output order: {', '.join(class_names)}",
        f"- Input: log-mel (batch, 1, {meta['features']['n_mels']}, frames) at {meta['sample_rate']} Hz; "
        "output: class probabilities",
        f"- Source: {meta.get('source') or UNKNOWN}",
        "",
        "## Training data",
        "",
        f"- Corpora: {', '.join(corpora) if corpora else UNKNOWN}",
        f"- Hours of audio in the feature set: {data['hours']:.2f}" if "hours" in data
        else f"- Hours of audio in the feature set: {UNKNOWN}",
        f"- Feature set: {data.get('features_uri') or UNKNOWN}",
    ]
    speakers = data.get("speakers_by_split") or {}
    labels = data.get("labels_by_split") or {}
    if speakers or labels:
        splits = sorted(set(speakers) | set(labels))
        lines += ["", "Labelled utterances and speakers per split:", ""]
        lines += _table(["split", "speakers", *class_names, "total"],
                        [[s, speakers.get(s, ""), *[labels.get(s, {}).get(str(i), labels.get(s, {}).get(i, 0))
                                                    for i in range(len(class_names))],
                          sum(labels.get(s, {}).values())] for s in splits])
    else:
        lines.append(f"- Speakers and label distribution: {UNKNOWN}")
    protocol = meta.get("protocol") or {}
    lines += [
        "",
        "## Evaluation protocol",
        "",
        f"- Split: {protocol.get('split', UNKNOWN)}",
        f"- Speaker independence: {protocol.get('speaker_independent', UNKNOWN)}",
        "- Checkpoint selection: the epoch with the best validation UA" if recipe else
        "- Checkpoint selection: " + UNKNOWN,
        "",
        "## Recipe",
        "",
    ]
    if recipe:
        keys = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "lr_step_epochs", "lr_gamma",
                "crop_seconds", "crop_frames", "class_weighted", "spec_augment", "seed", "init_from", "freeze")
        lines += [f"- {k}: {recipe[k]}" for k in keys if k in recipe]
    else:
        lines.append(f"- {UNKNOWN} (not trained by lssed: see where the checkpoint came from)")
    lines += ["", "Feature and preprocessing settings (apply exactly these to new audio):", "",
              f"- features: `{json.dumps(meta['features'])}`",
              f"- preprocess: {'`' + json.dumps(meta['preprocess']) + '`' if meta.get('preprocess') is not None else UNKNOWN}"
              + (" (stated by the user at export)" if meta.get("settings_from") == "user" else ""),
              "", "## Metrics", ""]
    lines += _metrics_section(meta.get("metrics") or {}, class_names)
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- Research and benchmarking of speech emotion recognition on the four classes above.",
        "- Trained on the corpora named above; acted, elicited or synthetic speech (as in the demo corpus) "
        "differs from spontaneous speech, and accuracy on other corpora, languages, microphones or "
        "recording conditions is not known until measured (`lssed evaluate`).",
        "- Not for clinical, hiring, legal, security or any decision about a person: an emotion label "
        "from a voice is an uncertain guess, not a fact about that person.",
        "- Probabilities are not calibrated; low-confidence outputs are frequent on out-of-domain audio.",
        "",
        "## To be filled in by whoever releases this model",
        "",
        "- Data licence (of every training corpus): _fill in_",
        "- Model licence: _fill in_",
        "- Consent and privacy of the speakers: _fill in_",
        "- Contact: _fill in_",
        "",
    ]
    return "\n".join(lines)


def run_card_metadata(results: Any, training_data: Mapping[str, Any], *,
                      preprocess: Mapping[str, Any] | None = None, source: str = "") -> dict[str, Any]:
    """Export metadata (plus recipe and protocol) for a finished run's :class:`RunResults`."""
    import dataclasses

    from lssed.models.export import build_metadata

    metrics = {"val": dataclasses.asdict(results.val)}
    metrics.update({k: dataclasses.asdict(v) for k, v in results.evaluations.items()})
    train = dict(results.train_config)
    corpora = [c for c in results.train_corpus.split("+") if c] or list(training_data.get("corpora") or [])
    meta = build_metadata(
        model=results.model, class_names=results.class_names, features=results.feature_config,
        preprocess=preprocess if preprocess is not None else training_data.get("preprocess"),
        train_corpora=corpora, metrics=metrics, source=source, run_name=results.run_name,
        model_kwargs=train.get("model_kwargs") or {}, training_data=training_data,
    )
    meta["recipe"] = train
    shared = training_data.get("shared_speakers")
    fold = train.get("fold")
    meta["protocol"] = {
        "split": "k-fold, test fold " + str(fold) if fold is not None else "train/val/test by the feature set's "
                                                                          "split column",
        # counted on the shards' labelled rows, whatever protocol made the split
        "speaker_independent": UNKNOWN if shared is None else "yes (no speaker is in two splits)" if shared == 0
        else f"no: {shared} speakers are in more than one split (an utterance-level split)",
    }
    return meta


def write_run_card(run: Storage, results: Any, config: Mapping[str, Any]) -> None:
    """``MODEL_CARD.md`` in the run directory (called by ``write_run_outputs``)."""
    features = Storage(**config["features_storage"]) if config.get("features_storage") else \
        run.at(results.features_uri)
    summary = training_data_summary(features)
    meta = run_card_metadata(results, summary, source=run.uri)
    run.write_bytes(render_card(meta).encode(), CARD_FILE)
