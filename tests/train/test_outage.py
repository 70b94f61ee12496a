"""Training whose checkpoints go to S3 through an 8 s outage of every connection (a TCP proxy in front
of the moto server cuts them): the run completes, every epoch once, and no checkpoint object in
storage is partial."""

from __future__ import annotations

import io
import uuid

import pytest
import torch

from lssed.storage import Storage
from lssed.train.stage import train

from faults import in_background, wait_for
from tcpproxy import tcp_proxy

from .conftest import small_config

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]

BUCKET = "lssed-test"
EPOCHS = 4


def test_s3_outage_while_writing_checkpoints(ray_session, s3_endpoint, synthetic_features):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)  # the test's own view, not through the proxy
    prefix = f"faults/train-{uuid.uuid4().hex[:8]}"

    def keys() -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    with tcp_proxy(s3_endpoint) as proxy:
        cfg = small_config(f"train.epochs={EPOCHS}", f"storage.endpoint_url={proxy.url}")
        out = Storage(f"s3://{BUCKET}/{prefix}", proxy.url)
        thread, box = in_background(
            lambda: train(cfg, synthetic_features, out=out, model="resnet18", run_name="outage"))
        wait_for(lambda: any("checkpoint_epoch_0001/" in k for k in keys()) or not thread.is_alive(),
                 "the first checkpoint", timeout=600)
        assert thread.is_alive(), f"training ended before the outage: {box}"
        proxy.cut(8.0)
        thread.join(800)
        refused = proxy.refused
    assert not thread.is_alive(), "training hung after the outage"
    assert "error" not in box, f"the outage failed the run: {box.get('error')!r}"
    assert refused > 0, "nothing reached for storage during the cut: the test did not test an outage"
    res = box["result"]
    assert [h.epoch for h in res.history] == list(range(1, EPOCHS + 1))
    all_keys = keys()
    assert not [k for k in all_keys if ".tmp" in k.rsplit("/", 1)[-1]], "a temporary object is visible"
    states = [k for k in all_keys if k.endswith("/state.pt")]
    assert states, "no checkpoint reached storage"
    for k in states:  # every checkpoint object is whole: it loads, and names its own epoch
        state = torch.load(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()), weights_only=True)
        assert f"checkpoint_epoch_{int(state['epoch']):04d}/" in k
    assert any(k.endswith("/outage/results.json") for k in all_keys)
