"""Storage URIs: a local path, ``file://path`` or ``s3://bucket/prefix`` on any S3 endpoint.

Everything goes through a pyarrow filesystem (what Ray Data and Ray Train take), so local
disk and S3 share one code path. Credentials come only from the standard AWS chain
(environment, ~/.aws, instance/pod role); this module never reads, logs or stores them.

S3 requests are retried and time out as :class:`Storage` says (``storage.retries``,
``storage.connect_timeout_s``, ``storage.request_timeout_s``; docs/cluster.md, "Storage").
Each process keeps one pyarrow and one s3fs filesystem per endpoint, region and those
settings, so a Storage (a small frozen dataclass, pickled to Ray workers) is cheap to copy
and every call reuses the same connection pool.

Stage outputs are committed with a ``_SUCCESS.json`` marker written last: a directory
without the marker is incomplete, is never read, and is cleared when the stage reruns.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow.fs as pafs

from lssed.errors import UserError

from lssed.config import StorageConfig

log = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS.json"


class StorageError(UserError, RuntimeError):
    """A storage URI is malformed or unreachable; the message says what to check."""


def _endpoint(endpoint_url: str | None) -> str | None:
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _region(region: str | None) -> str:
    return region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass(frozen=True)
class Storage:
    """A root URI plus how to reach it. Paths below the root are '/'-joined strings.

    ``retries``, ``connect_timeout_s`` and ``request_timeout_s`` apply to S3 (both pyarrow
    and s3fs); their defaults are :class:`lssed.config.StorageConfig`'s.
    """

    uri: str
    endpoint_url: str | None = None
    region: str | None = None
    retries: int = StorageConfig.retries
    connect_timeout_s: float = StorageConfig.connect_timeout_s
    request_timeout_s: float = StorageConfig.request_timeout_s

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise StorageError(f"storage.retries must be an integer >= 0 (retries after the first attempt), "
                               f"got {self.retries!r}")
        for name in ("connect_timeout_s", "request_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise StorageError(f"storage.{name} must be a number of seconds > 0, got {value!r}")

    # ------------------------------------------------------------------ parsing
    @property
    def scheme(self) -> str:
        parsed = urlparse(self.uri)
        if parsed.scheme in ("", "file"):
            return "file"
        if parsed.scheme in ("s3", "s3a"):
            return "s3"
        raise StorageError(
            f"unsupported storage URI {self.uri!r}: use a local path, file://PATH or s3://BUCKET/PREFIX"
        )

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def root(self) -> str:
        """The root as a path inside :attr:`filesystem` (no scheme)."""
        parsed = urlparse(self.uri)
        if self.scheme == "s3":
            if not parsed.netloc:
                raise StorageError(f"{self.uri!r} names no bucket: write s3://BUCKET/PREFIX")
            return (parsed.netloc + "/" + parsed.path.lstrip("/")).rstrip("/")
        path = parsed.path if parsed.scheme == "file" else self.uri
        return os.path.abspath(os.path.expanduser(path))

    # ------------------------------------------------------------------ filesystems
    @property
    def filesystem(self) -> pafs.FileSystem:
        """pyarrow's filesystem for this storage: one per process and settings (shared)."""
        if self.scheme == "file":
            return pafs.LocalFileSystem()
        return _pyarrow_s3(_endpoint(self.endpoint_url), _region(self.region), self.retries,
                           float(self.connect_timeout_s), float(self.request_timeout_s))

    def fsspec(self) -> Any:
        """An fsspec filesystem for the same storage (s3fs for S3): one per process and settings."""
        if self.scheme == "file":
            import fsspec

            return fsspec.filesystem("file")
        return _s3fs(_endpoint(self.endpoint_url), self.region, self.retries,
                     float(self.connect_timeout_s), float(self.request_timeout_s))

    # ------------------------------------------------------------------ paths
    def child(self, *parts: str) -> "Storage":
        return self.at(self.join_uri(*parts))

    def at(self, uri: str) -> "Storage":
        """Another URI reached the same way (endpoint, region, retries, timeouts)."""
        return dataclasses.replace(self, uri=uri)

    def path(self, *parts: str) -> str:
        """A path inside :attr:`filesystem` below the root."""
        return posixpath.join(self.root, *[p.strip("/") for p in parts if p])

    def join_uri(self, *parts: str) -> str:
        inner = self.path(*parts)
        return f"s3://{inner}" if self.is_s3 else inner

    # ------------------------------------------------------------------ small I/O
    def exists(self, *parts: str) -> bool:
        info = self.filesystem.get_file_info(self.path(*parts))
        return info.type != pafs.FileType.NotFound

    def makedirs(self, *parts: str) -> None:
        self.filesystem.create_dir(self.path(*parts), recursive=True)

    def read_bytes(self, *parts: str) -> bytes:
        with self.filesystem.open_input_stream(self.path(*parts)) as f:
            return f.read()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write a whole object. On S3 a PUT is atomic; locally we write a hidden ``.tmp-*``
        sibling (skipped by pyarrow/Ray readers) and rename it."""
        fs = self.filesystem
        target = self.path(*parts)
        fs.create_dir(posixpath.dirname(target), recursive=True)
        if self.is_s3:
            with fs.open_output_stream(target) as f:
                f.write(data)
            return
        tmp = posixpath.join(posixpath.dirname(target), f".tmp-{uuid.uuid4().hex[:8]}-{posixpath.basename(target)}")
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, target)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), *parts)

    def list(self, *parts: str, recursive: bool = False) -> list[str]:
        """Paths (inside the filesystem) below a directory; [] when it does not exist."""
        selector = pafs.FileSelector(self.path(*parts), allow_not_found=True, recursive=recursive)
        return sorted(info.path for info in self.filesystem.get_file_info(selector))

    def file_sizes(self, recursive: bool = True) -> dict[str, int]:
        """URI -> size of every file below this root, from one listing (on S3 one paged
        ListObjectsV2, not a request per file); {} when nothing is there."""
        selector = pafs.FileSelector(self.root, allow_not_found=True, recursive=recursive)
        prefix = "s3://" if self.is_s3 else ""
        return {prefix + info.path: info.size for info in self.filesystem.get_file_info(selector)
                if info.type == pafs.FileType.File}

    def delete_dir(self, *parts: str) -> None:
        if self.exists(*parts):
            self.filesystem.delete_dir(self.path(*parts))

    def __str__(self) -> str:  # never shows credentials: there are none in here
        return self.uri


# The caches are keyed by everything that shapes the client, endpoint and region resolved
# from the environment first, so a changed AWS_ENDPOINT_URL gets its own filesystem.
@functools.lru_cache(maxsize=None)
def _pyarrow_s3(endpoint: str | None, region: str, retries: int, connect_timeout_s: float,
                request_timeout_s: float) -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem on AWS or any S3-compatible endpoint, default credential chain.

    ``request_timeout`` is, with pyarrow's curl client on Linux, the longest time a request
    may go without receiving a byte (not a cap on a whole transfer), so large objects are fine.
    """
    kwargs: dict[str, Any] = {
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=retries + 1),
        "connect_timeout": connect_timeout_s,
        "request_timeout": request_timeout_s,
        "region": region,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme in ("http", "https"):
            kwargs["endpoint_override"] = parsed.netloc + parsed.path.rstrip("/")
            kwargs["scheme"] = parsed.scheme
        else:
            kwargs["endpoint_override"] = endpoint
        # S3-compatible servers (MinIO, moto) expect path-style requests
        kwargs["force_virtual_addressing"] = False
    fs = _S3FileSystem(**kwargs)
    fs.lssed_settings = (endpoint, region, retries, connect_timeout_s, request_timeout_s)
    return fs


class _S3FileSystem(pafs.S3FileSystem):
    """pyarrow's S3 filesystem that keeps its retry strategy when pickled.

    pyarrow pickles an ``S3FileSystem`` without its ``retry_strategy``: the copy that Ray sends
    to its processes (Ray Train's controller and workers get ``RunConfig.storage_filesystem``,
    Ray Data's read tasks their ``filesystem``) would retry with pyarrow's default of 3 attempts
    and fail a run on a few seconds of S3 outage. This one is rebuilt from lssed's settings.
    """

    lssed_settings: tuple[Any, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        return _pyarrow_s3, self.lssed_settings


@functools.lru_cache(maxsize=None)
def _s3fs(endpoint: str | None, region: str | None, retries: int, connect_timeout_s: float,
          request_timeout_s: float) -> Any:
    """s3fs on the same endpoint. botocore does the retrying (standard mode, with backoff);
    s3fs's own retry loop is cut to one pass so a dead endpoint costs ``retries + 1``
    attempts, not five times that."""
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if region:
        client_kwargs["region_name"] = region
    config_kwargs = {
        "connect_timeout": connect_timeout_s,
        "read_timeout": request_timeout_s,
        "retries": {"total_max_attempts": retries + 1, "mode": "standard"},
    }
    # skip_instance_cache: fsspec's own cache would hand this instance (with its retry
    # setting changed below) to any other caller with the same arguments
    fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, config_kwargs=config_kwargs, skip_instance_cache=True)
    fs.retries = 1
    return fs


_SETTINGS = ("endpoint_url", "region", "retries", "connect_timeout_s", "request_timeout_s")


def storage_from_config(storage_cfg: Any, uri: str | None = None) -> Storage:
    """A :class:`Storage` for ``uri`` (default: the configured root) reached as ``storage_cfg`` says.

    ``storage_cfg`` is a :class:`~lssed.config.StorageConfig`, another :class:`Storage` (whose
    endpoint, region, retries and timeouts are reused) or None (defaults; then ``uri`` is needed).
    """
    if uri is None:
        if storage_cfg is None:
            raise StorageError("no storage URI: pass one or a storage config with a root")
        # a Storage's own .root is a filesystem path; its URI is what names the place
        uri = storage_cfg.uri if isinstance(storage_cfg, Storage) else storage_cfg.root
    settings = {k: getattr(storage_cfg, k) for k in _SETTINGS if getattr(storage_cfg, k, None) is not None}
    return Storage(uri, **settings)


# --------------------------------------------------------------------------- stage outputs


@dataclass(frozen=True)
class StageOutput:
    """``<storage>/<stage>/<digest>/``: written, then committed by a ``_SUCCESS.json`` marker."""

    storage: Storage  # points at the stage output directory itself

    @property
    def uri(self) -> str:
        return self.storage.uri

    def is_committed(self) -> bool:
        return self.storage.exists(SUCCESS_MARKER)

    def marker(self) -> dict[str, Any]:
        if not self.is_committed():
            raise StorageError(f"{self.uri} has no {SUCCESS_MARKER}: the stage that writes it did not finish")
        return self.storage.read_json(SUCCESS_MARKER)

    def commit(self, marker: dict[str, Any]) -> None:
        self.storage.write_json(marker, SUCCESS_MARKER)

    def clear(self) -> None:
        self.storage.delete_dir()


def stage_output(root: Storage, stage: str, key: str) -> StageOutput:
    return StageOutput(root.child(stage, key))
