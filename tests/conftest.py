"""Session fixtures: one local Ray for the whole run, a moto S3 server, the demo corpus.

Ray is started with more logical CPUs than cores (see lssed.runtime) so that Ray Data's
tasks never starve beside training workers on a 2-core CI machine.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def ray_session(s3_endpoint):
    """One local Ray instance for all tests that need it (marker ``ray``).

    It starts after the moto server so that its worker processes inherit the server's
    endpoint and test credentials from the environment, as they would on a real cluster.
    """
    import ray

    from lssed.runtime import init_ray

    init_ray(num_cpus=8, object_store_memory=512 * 1024 * 1024, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-protocol server (moto) on 127.0.0.1 with bucket ``lssed-test``."""
    from s3server import moto_s3_server  # tests/s3server.py (tests/ is on sys.path under pytest)

    with moto_s3_server("lssed-test") as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def demo_corpus_csv(tmp_path_factory):
    """The demo corpus, built once per session: 6 speakers x 4 classes x 4 utterances + 12
    extra-label ones, 108 utterances in 18 media files (mp4/mkv/wav/webm/flac)."""
    from lssed.corpora.demo import make_demo_corpus

    return make_demo_corpus(tmp_path_factory.mktemp("demo_corpus"), speakers=6, per_class=4, seed=0)


@pytest.fixture(scope="session")
def daicwoz_demo(tmp_path_factory):
    """The synthetic DAIC-WOZ (lssed.corpora.demo_daicwoz), built once per session: 12 interviews x
    3 turns, AVEC 2017 train 8 / dev 4 participants (both classes in each); ``.root`` reads with
    ``prepare("daicwoz", root)``."""
    from lssed.corpora.demo_daicwoz import build_daicwoz_demo

    return build_daicwoz_demo(tmp_path_factory.mktemp("daicwoz_demo") / "corpus", participants=12, turns=3, seed=1)


@pytest.fixture(scope="session")
def demo_manifest(demo_corpus_csv, tmp_path_factory):
    """Path of the demo corpus's manifest parquet (speaker split 4/1/1; rejects file beside it)."""
    from lssed.corpora import prepare, write_manifest

    prepared = prepare("demo", demo_corpus_csv)
    manifest, _ = write_manifest(prepared, tmp_path_factory.mktemp("demo_manifest") / "manifest.parquet")
    return manifest


@pytest.fixture(scope="session")
def demo_features(ray_session, demo_manifest, tmp_path_factory) -> str:
    """The demo corpus through the real preprocess stage (paper chain, 128 log-mel): its URI."""
    from lssed.config import load_config
    from lssed.preprocess.stage import preprocess
    from lssed.storage import Storage

    cfg = load_config(None, ["preprocess.num_actors=2"])
    out = Storage(str(tmp_path_factory.mktemp("demo_features")))
    return preprocess(cfg, demo_manifest, out=out).uri


# The recipe of `demo_run`: a resnet18 trained in-process (no Ray Train) on the demo features.
DEMO_RUN_OVERRIDES = ("train.model=resnet18", "train.epochs=4", "train.batch_size=16", "train.lr=0.01",
                      "train.crop_seconds=2.0", "train.eval_batch_size=16", "train.lr_step_epochs=3")


@pytest.fixture(scope="session")
def demo_run(demo_features, tmp_path_factory):
    """A finished run on the demo features, shared by the tests that use what was trained
    (predict, embed, transfer, export): ``(run Storage, RunResults, features URI)``.

    Trained in this process through the real loop (lssed.train.local.run_local) and written
    with the real run outputs (results.json, best_model.pt, predictions, MODEL_CARD.md), so
    it is a run like any `lssed train` leaves, in seconds rather than a Ray Train job.
    """
    import torch

    from lssed.config import load_config
    from lssed.storage import Storage
    from lssed.train.data import collate_logmel_crops, describe_features, shard_tables, silence_value, utterances
    from lssed.train.local import LocalContext, run_local
    from lssed.train.outputs import write_run_outputs
    from lssed.train.trainer import loop_config

    torch.manual_seed(0)
    cfg = load_config(None, list(DEMO_RUN_OVERRIDES))
    src = describe_features(cfg, demo_features)
    run = Storage(str(tmp_path_factory.mktemp("demo_run"))).child("runs", "demo-resnet18")
    config = loop_config(cfg, src, out=run, model="resnet18", run_name="demo-resnet18")
    crop = int(config["train"]["crop_frames"])
    crops = collate_logmel_crops(shard_tables(src, "train"), n_mels=src.n_mels, crop_frames=crop, seed=0,
                                 epoch=1, pad_value=silence_value(src.features))
    data = (torch.from_numpy(crops["x"]), torch.from_numpy(crops["y"]), torch.from_numpy(crops["lengths"]))
    evals = {s: list(utterances(shard_tables(src, s), n_mels=src.n_mels, recompute=False)) for s in ("val", "test")}
    outcome = run_local(config, LocalContext(data, evals, device="cpu"))
    results = write_run_outputs(run, outcome, config)
    return run, results, demo_features
