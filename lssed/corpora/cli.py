"""Read a corpus into a manifest of utterances with train/val/test splits.

CORPUS is one of generic, demo, iemocap, meld, ravdess, cremad, daicwoz; ROOT is the corpus's
root directory (for generic and demo: the CSV). Both default to corpus.name / corpus.root of
--config/--set; every option below overrides its corpus.* key. Rows that cannot be used
(missing media, end <= start, unknown label, no speaker, duplicate id, unparsable line, a
path outside the root, ...) go to MANIFEST.rejects.parquet beside the manifest with their
reason and line; --strict fails on the first instead. The rejects file is always written;
when every row is rejected the command exits with status 2. See docs/corpora.md for each
corpus's layout, label mapping, split protocols and the reject codes.

Examples:
  lssed prepare generic data/corpus.csv --out m.parquet --name mycorpus --split folds --folds 5
  lssed prepare iemocap IEMOCAP_full_release --out iemocap.parquet --split official
  lssed prepare --config workflows/configs/demo.yaml --set corpus.split=utterance --out m.parquet
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from typing import Any

from lssed.cliutil import add_config_arguments

log = logging.getLogger(__name__)

# option dest -> corpus.* key (options left unset keep the config's value)
_CORPUS_KEYS = {
    "corpus": "name", "root": "root", "name": "id", "split": "split", "folds": "folds", "seed": "seed",
    "val_fraction": "val_fraction", "test_fraction": "test_fraction", "encoding": "encoding",
    "merge_excited": "merge_excited",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lssed.corpora import ADAPTERS, SPLIT_PROTOCOLS

    parser.add_argument("corpus", metavar="CORPUS", nargs="?", choices=list(ADAPTERS),
                        help=f"one of {', '.join(ADAPTERS)} (default corpus.name)")
    parser.add_argument("root", metavar="ROOT", nargs="?",
                        help="corpus root directory (generic/demo: the CSV file); default corpus.root")
    parser.add_argument("--out", required=True, metavar="MANIFEST.parquet", help="manifest to write")
    parser.add_argument("--name", metavar="NAME", default=None,
                        help="the manifest's (and shards') corpus value, default CORPUS: names a generic corpus "
                             "(corpus.id)")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="fail on the first unusable row instead of rejecting it")
    parser.add_argument("--split", choices=SPLIT_PROTOCOLS, default=None,
                        help="speaker: speaker-group, label-stratified (default); utterance: rows alone (leaks "
                             "speakers); official: the corpus's own; folds: --folds speaker-group folds")
    parser.add_argument("--folds", type=int, default=None, help="--split folds: the number of folds (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the speaker split (default 0)")
    parser.add_argument("--val-fraction", type=float, default=None, help="share of utterances in val (default 0.15)")
    parser.add_argument("--test-fraction", type=float, default=None, help="share of utterances in test (default 0.2)")
    parser.add_argument("--merge-excited", action=argparse.BooleanOptionalAction, default=None,
                        help="count excited as happy in the 4 classes (default: the corpus's convention, on for "
                             "iemocap only)")
    parser.add_argument("--test-session", type=int, default=None,
                        help="iemocap --split official: the held-out session (default 5)")
    parser.add_argument("--encoding", default=None,
                        help="generic/demo: the CSV's encoding (default auto: UTF-8, else Windows-1252/Latin-1 "
                             "with a warning)")
    parser.add_argument("--allow-outside-root", action="store_true", default=None,
                        help="generic/demo: accept media paths outside the CSV's folder (.. or absolute)")
    add_config_arguments(parser)


def corpus_config(args: argparse.Namespace) -> Any:
    """The validated config: --config, then --set, then this command's options."""
    from lssed.config import load_config, replace_section
    from lssed.validate import validate_config

    cfg = load_config(args.config, args.overrides)
    changes = {key: getattr(args, dest) for dest, key in _CORPUS_KEYS.items() if getattr(args, dest) is not None}
    for flag in ("strict", "allow_outside_root"):
        if getattr(args, flag):
            changes[flag] = True
    if changes:
        cfg = replace_section(cfg, "corpus", **changes)
    return validate_config(cfg, "corpus")


def main(args: argparse.Namespace) -> int:
    from lssed.corpora import CorpusError, prepare_config, reject_summary, write_manifest

    cfg = corpus_config(args)
    c = cfg.corpus
    options = {}
    if args.test_session is not None:
        if c.name != "iemocap":
            raise CorpusError(f"--test-session only applies to iemocap, not {c.name}")
        options["test_session"] = args.test_session
    prepared = prepare_config(c, storage=cfg.storage, **options)  # an s3:// root: storage.endpoint_url
    manifest, rejects = write_manifest(prepared, args.out)
    m = prepared.manifest
    print(f"manifest: {manifest} ({m.num_rows} utterances, corpus {c.id or c.name})")
    print(f"rejects:  {rejects} ({prepared.rejects.num_rows} rows)")
    print(f"input rows: {prepared.input_rows} = {m.num_rows} kept + {prepared.rejects.num_rows} rejected")
    reasons = reject_summary(prepared.rejects.column("reason").to_pylist())
    if m.num_rows == 0:
        log.error("%s: all %d rows were rejected (%s); the reasons, with their lines, are in %s", c.name,
                  prepared.input_rows, reasons, rejects)
        return 2
    splits = prepared.split_counts()
    speakers = {s: len({sp for sp, x in zip(m.column("speaker").to_pylist(), m.column("split").to_pylist()) if x == s})
                for s in splits}
    print("splits (" + prepared.split_protocol + "): " + ", ".join(
        f"{s} {splits.get(s, 0)} utts / {speakers.get(s, 0)} speakers" for s in ("train", "val", "test")))
    folds = [f for f in m.column("fold").to_pylist() if f is not None]
    if folds:
        print("folds: " + ", ".join(f"{f}: {n} utts" for f, n in sorted(Counter(folds).items()))
              + " (a run with train.fold=f tests on fold f and validates on fold f+1 mod k)")
    print("labels: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(m.column("label").to_pylist()).items())))
    if prepared.rejects.num_rows:
        print(f"reject reasons: {reasons} (each with its line in {rejects})")
    return 0
