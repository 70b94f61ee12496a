"""The Ray Train glue: ``make_trainer`` builds a ``TorchTrainer`` whose workers run
:func:`lssed.train.loop.run_training` through :class:`RayContext`.

Data: one Ray Dataset per split from the shards; ``train`` is split across workers
(``streaming_split``, order preserved so a seed makes a run repeatable) and reaches each
worker through ``get_dataset_shard("train").iter_torch_batches`` with a crop/pad collate, a
seeded local shuffle (``train.local_shuffle_buffer_size``) and ``train.prefetch_batches``;
``val``/``test`` are streamed whole by rank 0 with plain pyarrow (one reader, no Ray Data
execution per epoch). Checkpoints go to ``<out>/runs/<run name>/`` (RunConfig
``storage_path=<out>/runs``, ``name=<run name>``; the newest ``train.checkpoints_to_keep``
are kept), so rerunning the same run name resumes and ``FailureConfig`` restarts failed
workers from the latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from lssed.config import Config, config_to_dict
from lssed.labels import BENCHMARK_CLASSES
from lssed.storage import Storage
from lssed.train.data import (FeatureSource, TrainCollate, describe_features, iter_split_batches, silence_value,
                              split_datasets, utterances)
from lssed.train.loop import run_training
from lssed.train.types import LoopOutcome, Utterance

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"  # the loop's checkpoint state inside each checkpoint directory


def loop_config(cfg: Config, source: FeatureSource, *, out: Storage, model: str, run_name: str) -> dict[str, Any]:
    """The plain-data config every worker receives (see :func:`lssed.train.loop.run_training`).

    ``train`` holds the settings in effect: the crop in frames at the features' hop and the
    lr step in epochs (what the run's results record and the report compares).
    """
    from lssed.train.loop import lr_step_epochs

    train = config_to_dict(cfg.train)
    train["crop_frames"] = cfg.train.crop_frames_at(int(source.features["sample_rate"]),
                                                    int(source.features["hop_length"]))
    train["lr_step_epochs"] = lr_step_epochs(train)
    # train.input_norm travels as a create_model keyword in the run's results, so whatever
    # rebuilds the model from the run (evaluate, export, predict, embed) normalises as training did
    if cfg.train.input_norm != "none":
        train["model_kwargs"] = {**dict(cfg.train.model_kwargs or {}), "input_norm": cfg.train.input_norm}
    return {
        "model": model,
        "model_kwargs": dict(train["model_kwargs"] or {}),
        "num_classes": cfg.train.num_classes,
        "class_names": list(BENCHMARK_CLASSES[: cfg.train.num_classes]),
        "train": train,
        "features": dict(source.features),
        "stored_features": dict(source.stored_features),
        "recompute": source.recompute,
        "n_mels": source.n_mels,
        "pad_value": silence_value(source.features),
        "class_counts": list(source.class_counts),
        "train_corpora": list(source.train_corpora),
        "folds": source.folds,  # k of the k-fold protocol (train.fold), else None
        "features_uri": source.uri,
        "features_storage": dataclasses.asdict(source.storage),  # with its retries and timeouts
        "features_digest": source.digest,
        "run_name": run_name,
        "num_workers": cfg.train.num_workers,
        "out": dataclasses.asdict(out),
    }


CHECKPOINT_DIR = "checkpoint_epoch_{:04d}"


def latest_stored_state(run: Storage, after_epoch: int = 0) -> dict[str, Any] | None:
    """The newest ``checkpoint_epoch_NNNN/state.pt`` in ``run`` past ``after_epoch`` that loads."""
    import io

    epochs = []
    for path in run.list():
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith("checkpoint_epoch_") and name[17:].isdigit() and int(name[17:]) > after_epoch:
            epochs.append(int(name[17:]))
    for epoch in sorted(epochs, reverse=True):
        try:
            data = run.read_bytes(CHECKPOINT_DIR.format(epoch), STATE_FILE)
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn upload: fall back to the one before
            log.warning("skipping unreadable checkpoint %s: %s", run.join_uri(CHECKPOINT_DIR.format(epoch)), exc)
            continue
        if int(state.get("epoch", -1)) == epoch:
            log.info("resuming from unregistered checkpoint %s", run.join_uri(CHECKPOINT_DIR.format(epoch)))
            return state
    return None


class RayContext:
    """:class:`lssed.train.loop.WorkerContext` inside a Ray Train worker."""

    def __init__(self, config: dict[str, Any]) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.config = config
        self.rank = ctx.get_world_rank()
        self.world_size = ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.train_cfg = config["train"]

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def train_batches(self, epoch: int, batch_size: int) -> Iterable[dict[str, torch.Tensor]]:
        import ray.train

        seed = int(self.train_cfg["seed"])
        collate = TrainCollate(
            recompute=self.config["recompute"],
            n_mels=self.config["n_mels"],
            crop_frames=int(self.train_cfg["crop_frames"]),
            hop_length=int(self.config["features"]["hop_length"]),
            pad_value=float(self.config["pad_value"]),
            seed=seed,
            epoch=epoch,
        )
        shard = ray.train.get_dataset_shard("train")
        return shard.iter_torch_batches(
            batch_size=batch_size,
            collate_fn=collate,
            local_shuffle_buffer_size=shuffle_buffer_rows(self.train_cfg.get("local_shuffle_buffer_size"),
                                                          batch_size),
            local_shuffle_seed=seed * 100_003 + epoch,
            prefetch_batches=int(self.train_cfg.get("prefetch_batches", 2)),
        )

    def eval_utterances(self, split: str) -> Iterator[Utterance]:
        features = Storage(**self.config["features_storage"])
        columns = ["utt_id", "label4", "split", "n_frames", "waveform" if self.config["recompute"] else "logmel"]
        for table in iter_split_batches(features, split, columns, int(self.train_cfg["eval_batch_size"]),
                                        fold=self.train_cfg.get("fold"), folds=self.config.get("folds")):
            yield from utterances(table, n_mels=self.config["n_mels"], recompute=self.config["recompute"])

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest usable checkpoint: Ray's latest registered one, or a newer one in storage.

        Ray registers a reported checkpoint only when its controller next polls the workers;
        a worker killed in between leaves an uploaded but unregistered checkpoint, which
        Ray's own resume ignores. Our checkpoint directories are named by epoch, so we
        also scan the run directory and take a newer one that loads.
        """
        import ray.train

        state = None
        ckpt = ray.train.get_checkpoint()
        if ckpt is not None:
            try:
                with ckpt.as_directory() as d:
                    state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
            except Exception as exc:  # torn: the scan below finds an older complete one
                log.warning("Ray's latest checkpoint %s does not load (%s); scanning storage", ckpt.path, exc)
        newer = latest_stored_state(Storage(**self.config["out"]).child("runs", self.config["run_name"]),
                                    after_epoch=int(state["epoch"]) if state else 0)
        return newer or state

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        import ray.train

        if state is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / STATE_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d),
                             checkpoint_dir_name=CHECKPOINT_DIR.format(int(metrics["epoch"])))

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if self.world_size > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast(self, obj: Any) -> Any:
        if self.world_size == 1:
            return obj
        from ray.train.collective import broadcast_from_rank_zero

        return broadcast_from_rank_zero(obj)

    def write_outputs(self, outcome: LoopOutcome, config: dict[str, Any]) -> None:
        from lssed.train.outputs import write_run_outputs

        out = Storage(**config["out"])
        write_run_outputs(out.child("runs", config["run_name"]), outcome, config)


def shuffle_buffer_rows(setting: int | None, batch_size: int) -> int | None:
    """Ray Data's ``local_shuffle_buffer_size`` for ``train.local_shuffle_buffer_size``.

    None: 4 per-worker batches, at least 256 rows; 0: no local shuffle (Ray's None).
    """
    if setting is None:
        return max(4 * batch_size, 256)
    return int(setting) or None


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs.

    Logging needs no setup here: Ray Train configures the worker's root logger (INFO, to the
    console and its worker log), so the loop's epoch lines show as they are.
    """
    torch.set_num_threads(max(1, int(float(config["train"].get("cpus_per_worker", 1)))))
    run_training(config, RayContext(config))


def run_storage(out: Storage) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for RunConfig: ``<out>/runs``."""
    runs = out.child("runs")
    if out.is_s3:
        return runs.root, runs.filesystem  # a pyarrow filesystem and a scheme-less path
    return runs.root, None


def make_trainer(cfg: Config, features_uri: str, *, out: Storage, model: str, run_name: str,
                 callbacks: Sequence[Any] = ()) -> Any:
    """A ``ray.train.torch.TorchTrainer`` for one model on one feature set.

    Its train loop, on rank 0 at the end, evaluates the validation-UA-selected checkpoint on
    val and test and writes ``results.json`` and ``predictions.parquet`` (and
    ``best_model.pt``) into ``<out>/runs/<run_name>/``.
    """
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from lssed.train.ingest_plan import ingest_plan_for
    from lssed.validate import validate_config

    validate_config(cfg, "train", models=[model])  # every train.* rule, the ingest keys included
    tc = cfg.train
    source = describe_features(cfg, features_uri)
    if tc.init_from:
        from lssed.train.pretrained import check_init_from

        check_init_from(tc.init_from, {"endpoint_url": out.endpoint_url, "region": out.region})
    config = loop_config(cfg, source, out=out, model=model, run_name=run_name)
    datasets = split_datasets(source, splits=("train",))
    if ingest_plan_for(cfg, source).materialize:  # logs the decision and its numbers
        # small: read the shards once, not every epoch (each epoch still gets new crops)
        datasets["train"] = datasets["train"].materialize()

    train_options = DataConfig.default_ingest_options()
    train_options.preserve_order = True  # with the seeded local shuffle: repeatable runs
    data_config = DataConfig(datasets_to_split=["train"], execution_options={"train": train_options})

    resources: dict[str, float] = {"CPU": float(tc.cpus_per_worker)}
    if tc.use_gpu:
        resources["GPU"] = 1.0
    storage_path, storage_fs = run_storage(out)
    run_config = RunConfig(
        name=run_name,
        storage_path=storage_path,
        storage_filesystem=storage_fs,
        failure_config=FailureConfig(max_failures=tc.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=tc.checkpoints_to_keep),
        callbacks=list(callbacks) or None,
    )
    log.info("train %s on %s: %d worker(s), gpu=%s, %s", model, features_uri, tc.num_workers, tc.use_gpu,
             {k: v for k, v in source.split_counts.items()})
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker=resources),
        run_config=run_config,
        datasets=datasets,
        dataset_config=data_config,
    )
