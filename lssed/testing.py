"""Helpers for tests and benchmarks: a real S3-protocol server (moto) and a local Ray.

These are real services on 127.0.0.1, not mocks: Ray's worker processes reach the moto
server over HTTP exactly as they would reach S3.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def moto_s3_server(bucket: str = "lssed-test") -> Iterator[str]:
    """Run moto's S3 server on a free port; yields the endpoint URL with ``bucket`` created.

    Sets dummy credentials and AWS_ENDPOINT_URL in this process's environment for the
    duration, so Ray workers started afterwards inherit them.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
