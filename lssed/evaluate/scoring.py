"""Score a finished run's selected checkpoint (or an imported checkpoint) on another feature set.

The run's own STFT/mel settings are used: where the feature set's stored log-mels were made
with other settings, log-mel is recomputed from its stored waveforms (train/data.py's
recompute path). The classes must be the same list in the same order, or the scores would
compare different things. Results go inside the run, beside its own:

* ``<run>/evaluations/<corpus>.json``: WA, UA, macro-F1, per-class recall, confusion, n, and
  what was evaluated (``split`` other than ``test``: ``<corpus>.<split>.json``);
* ``<run>/evaluations/<corpus>.predictions.parquet``: per utterance (train/outputs.py schema).

The report reads them as the run's ``<split>@<corpus>`` evaluations (``test@<corpus>``).
No Ray: one process on the CPU (or a GPU), which is enough for evaluation sets.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Any, Sequence

from lssed.config import Config, StorageConfig, config_from_dict, config_to_dict
from lssed.errors import InputNotFoundError, UserError
from lssed.storage import Storage, storage_from_config
from lssed.train.results import Metrics

log = logging.getLogger(__name__)

EVALUATIONS_DIR = "evaluations"


class LabelSpaceMismatch(UserError):
    """The model's classes and the feature set's classes differ (names both lists)."""


@dataclass(frozen=True)
class CorpusEvaluation:
    """One evaluation of a run on one split of one feature set (what the JSON file holds)."""

    corpus: str  # the test corpus: the shards' `corpus` value(s), '+'-joined, or the caller's name
    split: str
    run_name: str
    train_corpus: str
    model: str
    class_names: tuple[str, ...]
    checkpoint: str  # "best_model.pt" of the run, or the imported file
    features_uri: str
    features_digest: str
    feature_config: dict[str, Any]  # the settings the model saw (the run's)
    features_recomputed: bool
    metrics: Metrics
    json_uri: str = ""
    predictions_uri: str = ""

    @property
    def key(self) -> str:
        """The run's evaluation name in the report: ``test@<corpus>``."""
        return f"{self.split}@{self.corpus}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("metrics")
        d.update(dataclasses.asdict(self.metrics))  # wa, ua, macro_f1, confusion, n at the top
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CorpusEvaluation":
        names = {f.name for f in dataclasses.fields(cls)} - {"metrics"}
        d = {k: v for k, v in data.items() if k in names}
        d["class_names"] = tuple(d.get("class_names") or ())
        return cls(metrics=Metrics.from_dict(data), **d)


def evaluation_stem(corpus: str, split: str = "test") -> str:
    """File stem inside ``evaluations/``: the corpus, and the split when it is not ``test``."""
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", corpus) or "corpus"
    return safe if split == "test" else f"{safe}.{split}"


def feature_class_names(marker: dict[str, Any]) -> tuple[str, ...]:
    """The classes a feature set's ``label4`` indexes (the benchmark's four unless it says)."""
    from lssed.labels import BENCHMARK_CLASSES

    return tuple(marker.get("class_names") or BENCHMARK_CLASSES)


def check_label_space(model_classes: Sequence[str], feature_classes: Sequence[str], *, what: str) -> None:
    """Raise :class:`LabelSpaceMismatch` naming both class lists unless they are the same list."""
    if tuple(model_classes) != tuple(feature_classes):
        raise LabelSpaceMismatch(
            f"{what}: the model predicts {list(model_classes)} but the feature set's label4 indexes "
            f"{list(feature_classes)}; evaluate on features with the same classes in the same order "
            "(or train a model on this label space)"
        )


def evaluate_on(run_uri: str, features_uri: str, *, split: str = "test", checkpoint: str | None = None,
                model: str | None = None, corpus: str | None = None,
                storage_cfg: StorageConfig | None = None, use_gpu: bool = False, amp: bool = True) -> CorpusEvaluation:
    """Score ``run_uri``'s selected weights (or ``checkpoint``) on ``split`` of ``features_uri``; write it in the run.

    ``model``: the architecture of an imported ``checkpoint`` (default: the run's, else
    inferred from the file). ``corpus``: the name of the test corpus in file names and tables
    (default: the shards' ``corpus`` values).
    """
    import torch

    from lssed.models import create_model
    from lssed.train.data import describe_features, shard_tables, utterances
    from lssed.train.evaluate import evaluate
    from lssed.train.outputs import BEST_MODEL_FILE, predictions_table, read_results

    storage_cfg = storage_cfg or StorageConfig()
    run = storage_from_config(storage_cfg, run_uri)
    results = read_results(run)
    if results is None and checkpoint is None:
        raise InputNotFoundError(
            f"{run.uri} has no results.json: the run has not finished (finish it with `lssed train`), or pass "
            "--checkpoint FILE to score an imported checkpoint into this directory"
        )
    state, model_name = _weights(run, results, checkpoint, model)
    class_names = _class_names(results, state)
    feature_section = results.feature_config if results else _stored_features(storage_cfg, features_uri)
    cfg: Config = config_from_dict({"storage": config_to_dict(storage_cfg), "features": feature_section,
                                    "train": {"num_classes": len(class_names)}})
    source = describe_features(cfg, features_uri, for_training=False)
    marker = source.storage.read_json("_SUCCESS.json")
    check_label_space(class_names, feature_class_names(marker), what=f"{run.uri} on {features_uri}")
    table = shard_tables(source, split, columns=[*source.columns, "corpus"])
    if table.num_rows == 0:
        raise UserError(f"{features_uri} has no labelled rows in split {split!r} (it has {source.split_counts}); "
                        "choose another --split")
    name = corpus or "+".join(sorted({str(c) for c in table.column("corpus").to_pylist()}))

    device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    model_kwargs = dict((results.train_config.get("model_kwargs") or {}) if results else {})
    net = create_model(model_name, num_classes=len(class_names), **model_kwargs)
    net.load_state_dict(state)
    net.to(device)
    items = utterances(table, n_mels=source.n_mels, recompute=source.recompute)
    metrics, preds = evaluate(net, items, device, num_classes=len(class_names), amp=amp,
                              features=source.features if source.recompute else None)

    stem = evaluation_stem(name, split)
    dest = run.child(EVALUATIONS_DIR)
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(predictions_table({split: preds}), sink, compression="zstd")
    dest.write_bytes(sink.getvalue().to_pybytes(), f"{stem}.predictions.parquet")
    result = CorpusEvaluation(
        corpus=name, split=split, run_name=results.run_name if results else run.root.rstrip("/").rsplit("/", 1)[-1],
        train_corpus=results.train_corpus if results else "", model=model_name, class_names=class_names,
        checkpoint=checkpoint or BEST_MODEL_FILE, features_uri=features_uri, features_digest=source.digest,
        feature_config=dict(source.features), features_recomputed=source.recompute, metrics=metrics,
        json_uri=dest.join_uri(f"{stem}.json"), predictions_uri=dest.join_uri(f"{stem}.predictions.parquet"),
    )
    dest.write_json(result.to_dict(), f"{stem}.json")  # last: the JSON marks the evaluation complete
    log.info("evaluated %s on %s (%s, %d utterances): UA %.4f WA %.4f -> %s", result.run_name, name, split,
             metrics.n, metrics.ua, metrics.wa, result.json_uri)
    return result


def _weights(run: Storage, results: Any, checkpoint: str | None, model: str | None) -> tuple[dict[str, Any], str]:
    """The state_dict to score and its architecture."""
    from lssed.train.outputs import read_best_state

    if checkpoint is None:
        if model and model != results.model:
            raise UserError(f"--model {model} differs from the run's model {results.model}; drop --model "
                            "(it names the architecture of an imported --checkpoint)")
        return read_best_state(run), results.model
    from lssed.models.checkpoints import infer_model, infer_num_classes, read_state_dict

    state, _ = read_state_dict(checkpoint)
    name = model or (results.model if results else None) or infer_model(state, infer_num_classes(state))
    return state, name


def _class_names(results: Any, state: dict[str, Any]) -> tuple[str, ...]:
    if results is not None:
        return tuple(results.class_names)
    from lssed.labels import BENCHMARK_CLASSES
    from lssed.models.checkpoints import infer_num_classes

    n = infer_num_classes(state)
    if n > len(BENCHMARK_CLASSES):
        raise LabelSpaceMismatch(f"the checkpoint has {n} outputs but the benchmark's classes are "
                                 f"{list(BENCHMARK_CLASSES)}; import a checkpoint with a 4-class head")
    return tuple(BENCHMARK_CLASSES[:n])


def _stored_features(storage_cfg: StorageConfig, features_uri: str) -> dict[str, Any]:
    """An imported checkpoint without a run: score it on the stored log-mels as they are."""
    from lssed.storage import SUCCESS_MARKER
    from lssed.train.data import stored_feature_config

    store = storage_from_config(storage_cfg, features_uri)
    if not store.exists(SUCCESS_MARKER):
        raise InputNotFoundError(f"{features_uri} has no {SUCCESS_MARKER}: pass a committed feature set")
    return config_to_dict(stored_feature_config(store.read_json(SUCCESS_MARKER), features_uri))


def read_evaluations(run: Storage) -> tuple[list[CorpusEvaluation], list[str]]:
    """Every ``evaluations/*.json`` of a run, and a line per unreadable file."""
    import json
    import posixpath

    found: list[CorpusEvaluation] = []
    problems: list[str] = []
    dest = run.child(EVALUATIONS_DIR)
    if not dest.exists():
        return found, problems
    for path in sorted(dest.list()):
        name = posixpath.basename(path.rstrip("/"))
        if not name.endswith(".json"):
            continue
        try:
            found.append(CorpusEvaluation.from_dict(json.loads(dest.read_bytes(name))))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{dest.join_uri(name)} is unreadable ({type(exc).__name__}: {exc}); left out")
    return found, problems
