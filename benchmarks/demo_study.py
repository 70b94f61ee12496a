"""What gets held-out-speaker test UA up on the demo corpus: a measured study, in-process.

Each variant trains through the real loop (lssed.train.local.run_local, no Ray Train: the
same run_training as `lssed train`, one worker) on features that `lssed demo-corpus` +
`lssed prepare demo` + `lssed preprocess` made once, with a fresh random crop of every
training utterance each epoch (as the Ray Data collate draws them), and selects the
checkpoint on validation UA; test speakers are never seen in training. A variant is a list
of config overrides plus, optionally, how many training speakers to keep (the first N by
name), so the validation and test speakers stay the same across variants.

    python benchmarks/demo_study.py FEATURES_URI [--variants a,b] [--seeds 0 1] [--json OUT]

Results: docs/training.md "Held-out speakers".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from lssed.config import load_config
from lssed.storage import Storage
from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value, utterances
from lssed.train.local import LocalContext, run_local
from lssed.train.trainer import loop_config

# The demo recipe before this study (lssed/configs/demo.yaml, session 4): 3 epochs, batch 32.
BASE = ("train.epochs=3", "train.batch_size=32", "train.lr=0.01", "train.lr_step_epochs=2", "train.crop_seconds=2.0")
LONG = ("train.epochs=12", "train.batch_size=16", "train.lr=0.01", "train.lr_step_epochs=8", "train.crop_seconds=2.0")
NORM = ("train.input_norm=utterance",)
AUG = ("train.spec_augment=true",)

# name -> (model, overrides, training speakers kept (None: all))
VARIANTS: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "demo3_4spk": ("resnet18", BASE, 4),
    "long_4spk": ("resnet18", LONG, 4),
    "long_norm_4spk": ("resnet18", LONG + NORM, 4),
    "long_aug_4spk": ("resnet18", LONG + AUG, 4),
    "long_norm_aug_4spk": ("resnet18", LONG + NORM + AUG, 4),
    "long_crop1s_4spk": ("resnet18", LONG[:-1] + ("train.crop_seconds=1.0",), 4),
    "long_crop4s_4spk": ("resnet18", LONG[:-1] + ("train.crop_seconds=4.0",), 4),
    "long_b32_4spk": ("resnet18", LONG[:1] + ("train.batch_size=32",) + LONG[2:], 4),
    "crnn_long_4spk": ("crnn_attn", LONG, 4),
    "crnn_long_norm_4spk": ("crnn_attn", LONG + NORM, 4),
    "vgg11_long_norm_4spk": ("vgg11", LONG + NORM, 4),
    "long_8spk": ("resnet18", LONG, 8),
    "long_all": ("resnet18", LONG, None),
    "long_aug_all": ("resnet18", LONG + AUG, None),
    "long_norm_all": ("resnet18", LONG + NORM, None),
    "demo3_norm_all": ("resnet18", BASE + NORM, None),
    "e6_norm_all": ("resnet18", ("train.epochs=6", "train.batch_size=16", "train.lr=0.01", "train.lr_step_epochs=4",
                                 "train.crop_seconds=2.0") + NORM, None),
    "crnn_e6_norm_all": ("crnn_attn", ("train.epochs=6", "train.batch_size=16", "train.lr=0.01",
                                       "train.lr_step_epochs=4", "train.crop_seconds=2.0") + NORM, None),
    "e8_all": ("resnet18", ("train.epochs=8", "train.batch_size=16", "train.lr=0.01", "train.lr_step_epochs=6",
                            "train.crop_seconds=2.0"), None),
    "e8_norm_all": ("resnet18", ("train.epochs=8", "train.batch_size=16", "train.lr=0.01", "train.lr_step_epochs=6",
                                 "train.crop_seconds=2.0") + NORM, None),
    "e6_norm_4spk": ("resnet18", ("train.epochs=6", "train.batch_size=16", "train.lr=0.01", "train.lr_step_epochs=4",
                                  "train.crop_seconds=2.0") + NORM, 4),
}


class RecropContext(LocalContext):
    """LocalContext drawing a new random crop of every training utterance each epoch."""

    def __init__(self, table: pa.Table, eval_data: dict[str, Any], *, n_mels: int, crop_frames: int,
                 pad_value: float, **kw: Any) -> None:
        self.table, self.n_mels, self.crop_frames, self.pad_value = table, n_mels, crop_frames, pad_value
        super().__init__(self._crops(1), eval_data, **kw)

    def _crops(self, epoch: int) -> tuple[torch.Tensor, ...]:
        c = collate_logmel_crops(self.table, n_mels=self.n_mels, crop_frames=self.crop_frames, seed=0,
                                 epoch=epoch, pad_value=self.pad_value)
        return torch.from_numpy(c["x"]), torch.from_numpy(c["y"]), torch.from_numpy(c["lengths"])

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        x, y, lengths = self._crops(epoch)
        self.x, self.y, self.lengths = x.to(self.device), y.to(self.device), lengths
        return super().train_batches(epoch, batch_size)


def keep_speakers(table: pa.Table, n: int | None) -> pa.Table:
    """The rows of the first ``n`` speakers by name (all when None)."""
    if n is None:
        return table
    names = sorted(set(table.column("speaker").to_pylist()))[:n]
    return table.filter(pc.is_in(table.column("speaker"), value_set=pa.array(names)))


def run_variant(features_uri: str, name: str, seed: int, out: Path) -> dict[str, Any]:
    model, overrides, n_speakers = VARIANTS[name]
    cfg = load_config(None, [f"train.model={model}", f"train.seed={seed}", "train.eval_batch_size=16",
                             *overrides])
    src = describe_features(cfg, features_uri)
    config = loop_config(cfg, src, out=Storage(str(out / name / str(seed))), model=model,
                         run_name=f"{name}-{seed}")
    train = keep_speakers(shard_tables(src, "train", [*src.columns, "speaker"]), n_speakers)
    evals = {s: list(utterances(shard_tables(src, s), n_mels=src.n_mels, recompute=False)) for s in ("val", "test")}
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    ctx = RecropContext(train.select(src.columns), evals, n_mels=src.n_mels, crop_frames=int(config["train"]["crop_frames"]),
                        pad_value=silence_value(src.features), device="cpu", seed=seed)
    outcome = run_local(config, ctx)
    seconds = time.perf_counter() - t0
    assert outcome is not None
    return {"variant": name, "model": model, "seed": seed, "overrides": list(overrides),
            "train_speakers": len(set(train.column("speaker").to_pylist())), "train_utts": train.num_rows,
            "test_ua": outcome.evaluations["test"].ua, "val_ua": outcome.val.ua, "best_epoch": outcome.best_epoch,
            "seconds": round(seconds, 1), "confusion": outcome.evaluations["test"].confusion,
            "val_ua_by_epoch": [round(h.val.ua, 3) for h in outcome.history],
            "train_loss_by_epoch": [round(h.train_loss, 3) for h in outcome.history]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("features", help="a committed feature set (<out>/features/<digest>)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (default: all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--json", default=".benchout/demo-study/study.json", help="results file (appended rows)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(path.read_text()) if path.exists() else []
    for name in names:
        for seed in args.seeds:
            row = run_variant(args.features, name, seed, path.parent / "runs")
            row["features"] = args.features
            rows.append(row)
            path.write_text(json.dumps(rows, indent=1, default=lambda o: np.asarray(o).tolist()))
            print(f"{name:24s} seed {seed}  test UA {row['test_ua']:.3f}  val UA {row['val_ua']:.3f}  "
                  f"best epoch {row['best_epoch']:2d}  {row['seconds']:6.1f} s  ({row['train_speakers']} train spk, "
                  f"{row['train_utts']} utts)", flush=True)
    print_table(rows)
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    """Mean per (variant, features) over seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r.get("features", "")), []).append(r)
    print(f"\n| variant | train spk | seeds | test UA (each) | mean test UA | mean val UA | s/run |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for (name, _), rs in groups.items():
        each = ", ".join(f"{r['test_ua']:.3f}" for r in rs)
        print(f"| {name} | {rs[0]['train_speakers']} | {len(rs)} | {each} | {np.mean([r['test_ua'] for r in rs]):.3f} | "
              f"{np.mean([r['val_ua'] for r in rs]):.3f} | {np.mean([r['seconds'] for r in rs]):.0f} |")


if __name__ == "__main__":
    sys.exit(main())
