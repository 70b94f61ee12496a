"""The workflow's cross-corpus stage: every run on every other corpus's test split (Table 4).

Each (run, corpus) evaluation is :func:`lssed.evaluate.scoring.evaluate_on` with the test
corpus's id as its name, written inside the run (``evaluations/<corpus>.json``); a committed
evaluation is read back instead of redone unless ``force``. A failing evaluation is
recorded and the others still run. No Ray: evaluation sets are scored in this process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from lssed.config import Config
from lssed.evaluate.scoring import CorpusEvaluation, evaluation_stem
from lssed.storage import Storage
from lssed.train.results import RunResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusFeatures:
    """One corpus of the workflow: its id (``corpus.id`` or its name) and committed features."""

    corpus: str
    features_uri: str


@dataclass(frozen=True)
class TrainedOn:
    """A finished run and the corpus (id) it trained on."""

    corpus: str
    run: RunResults


@dataclass(frozen=True)
class EvaluationFailure:
    name: str  # "<run name> on <corpus>"
    error: str  # "ExceptionType: message"


@dataclass(frozen=True)
class CrossCorpusResult:
    evaluations: tuple[CorpusEvaluation, ...]
    skipped: tuple[str, ...]  # "<run name>@<corpus>" found committed
    failures: tuple[EvaluationFailure, ...]


def crosscorpus_pairs(trained: Sequence[TrainedOn], corpora: Sequence[CorpusFeatures]) -> list[tuple[TrainedOn, CorpusFeatures]]:
    """Every run with every corpus it did not train on (the off-diagonal cells), in order."""
    return [(t, c) for t in trained for c in corpora if c.corpus != t.corpus]


def crosscorpus_stage(cfg: Config, trained: Sequence[TrainedOn], corpora: Sequence[CorpusFeatures], *,
                      out: Storage, force: bool = False) -> CrossCorpusResult:
    """Evaluate every run in ``trained`` on the test split of every other corpus in ``corpora``."""
    from lssed.evaluate.scoring import evaluate_on

    done: list[CorpusEvaluation] = []
    skipped: list[str] = []
    failures: list[EvaluationFailure] = []
    for t, c in crosscorpus_pairs(trained, corpora):
        run = out.child("runs", t.run.run_name)
        stem = evaluation_stem(c.corpus)
        if not force and run.exists("evaluations", f"{stem}.json"):
            done.append(CorpusEvaluation.from_dict(run.read_json("evaluations", f"{stem}.json")))
            skipped.append(f"{t.run.run_name}@{c.corpus}")
            continue
        try:
            res = evaluate_on(run.uri, c.features_uri, split="test", corpus=c.corpus, storage_cfg=cfg.storage,
                              use_gpu=cfg.train.use_gpu, amp=cfg.train.amp)
        except Exception as exc:  # noqa: BLE001 - recorded; the other evaluations still run
            log.error("evaluate %s on %s failed: %s", t.run.run_name, c.corpus, exc, exc_info=exc)
            failures.append(EvaluationFailure(f"{t.run.run_name} on {c.corpus}", f"{type(exc).__name__}: {exc}"))
            continue
        log.info("crosscorpus: %s (trained on %s) on %s: UA %.3f WA %.3f", t.run.run_name, t.corpus, c.corpus,
                 res.metrics.ua, res.metrics.wa)
        done.append(res)
    return CrossCorpusResult(tuple(done), tuple(skipped), tuple(failures))
