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
def demo_manifest(demo_corpus_csv, tmp_path_factory):
    """Path of the demo corpus's manifest parquet (speaker split 4/1/1; rejects file beside it)."""
    from lssed.corpora import prepare, write_manifest

    prepared = prepare("demo", demo_corpus_csv)
    manifest, _ = write_manifest(prepared, tmp_path_factory.mktemp("demo_manifest") / "manifest.parquet")
    return manifest
