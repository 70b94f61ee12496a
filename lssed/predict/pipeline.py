"""`lssed predict` on Ray Data: media -> windows (CPU actors) -> probabilities (model actors) -> outputs.

Per media file, on a pool of CPU actors (:class:`MediaWorker`, pure work in
:func:`prepare_media`): decode to 16 kHz mono (:func:`lssed.preprocess.decode.decode_file`),
find the speech (:func:`lssed.predict.vad.speech_regions`, on the decoded audio BEFORE
denoising, so silence is never denoised) or take the given segments, cut the regions into
windows (:func:`lssed.predict.segments.plan_windows`), and run the model's preprocessing
chain on each window (:func:`lssed.preprocess.chain.process_samples`: denoise -> gain ->
log-mel with the settings the model was trained with).

The model runs on an actor pool (:class:`ModelWorker`) that takes a GPU each where the
cluster has GPUs and a CPU otherwise. Each batch of windows is grouped by exact length
(:func:`predict_windows`): the models pool over time, so padding would change a prediction,
while windows cut at ``predict.max_segment_s`` all share one length and batch together.

Every media file ends as exactly one ``media`` row (done or quarantined), so
``done + quarantined = inputs`` is checked on the driver; a window whose chain fails is a
quarantine row of its own and its media goes on. The driver only sees small rows
(probabilities, regions), never audio, so a bucket of videos runs the same code as one file.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from lssed.predict.inputs import MediaInput

log = logging.getLogger(__name__)

WINDOW, MEDIA, QUARANTINE = "window", "media", "quarantine"

# One schema for every row between the stages (a row's ``kind`` says which fields it uses).
ROW_SCHEMA = pa.schema([
    ("kind", pa.string()),
    ("media", pa.string()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("region", pa.int32()),
    ("flags", pa.string()),  # ";"-joined
    ("n_mels", pa.int32()),
    ("n_frames", pa.int32()),
    ("logmel", pa.list_(pa.float32())),  # window rows: (n_mels, n_frames) row-major
    ("ok", pa.bool_()),  # media rows: False when the media is quarantined as a whole
    ("duration_s", pa.float64()),  # media rows
    ("regions", pa.string()),  # media rows: JSON [[start_s, end_s], ...]
    ("stage", pa.string()),  # quarantine rows
    ("code", pa.string()),
    ("reason", pa.string()),
])


@dataclass
class MediaResult:
    """What :func:`prepare_media` makes of one media file."""

    media: str
    ok: bool = True
    duration_s: float | None = None
    regions: list[tuple[float, float]] = field(default_factory=list)
    windows: list[Any] = field(default_factory=list)  # lssed.predict.segments.Window
    logmels: list[np.ndarray] = field(default_factory=list)  # one (n_mels, frames) per window
    quarantine: list[dict[str, str]] = field(default_factory=list)  # media, stage, code, reason

    def quarantined(self, stage: str, code: str, reason: str) -> None:
        self.quarantine.append({"media": self.media, "stage": stage, "code": code, "reason": reason})


def _span(start: float, end: float) -> str:
    return f"[{start:.2f}, {end:.2f}] s"


def prepare_media(item: MediaInput, chain_cfg: Any, pcfg: Any, *, method: str, storage: Any = None) -> MediaResult:
    """Decode one media file, find or take its speech, cut windows, run the chain on each; never raises.

    ``chain_cfg``: a config whose ``preprocess``/``features`` are the model's; ``pcfg``: the
    predict section; ``method``: the VAD (``silero``, ``energy``, ``none``) for media without
    given segments.
    """
    from lssed.preprocess.decode import DecodeError, Segment, decode_file

    res = MediaResult(item.uri)
    pre = chain_cfg.preprocess
    sr = int(pre.sample_rate)
    try:
        if item.segments is not None:
            spans = list(item.segments)
            decoded = decode_file(item.uri, [Segment(s, e) for s, e in spans], storage=storage, sample_rate=sr,
                                  max_missing_s=pre.max_missing_s, max_segment_s=pre.max_segment_s)
            audio: list[tuple[float, np.ndarray]] = []
            for (start, end), out in zip(spans, decoded):
                if isinstance(out, DecodeError):
                    res.quarantined("decode", out.code, f"segment {_span(start, end)}: {out}")
                else:
                    audio.append((start, out))
            if not audio:  # nothing of it decoded: the media is quarantined (its rows say why)
                res.ok = False
                return res
            res.regions = [(s, s + x.size / sr) for s, x in audio]
            res.duration_s = max(e for _, e in res.regions)
        else:
            (whole,) = decode_file(item.uri, [Segment(None, None)], storage=storage, sample_rate=sr,
                                   max_missing_s=pre.max_missing_s)
            if isinstance(whole, DecodeError):
                res.quarantined("decode", whole.code, str(whole))
                res.ok = False
                return res
            from lssed.predict.vad import speech_regions

            audio = [(0.0, whole)]
            res.duration_s = whole.size / sr
            try:
                res.regions = [(float(s), float(e)) for s, e in speech_regions(whole, sr, method, pcfg)]
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                res.quarantined("vad", "vad_failed", f"{type(exc).__name__}: {exc}")
                res.ok = False
                return res
        _windows(res, audio, chain_cfg, pcfg, sr, given=item.segments is not None)
    except Exception as exc:  # noqa: BLE001 - a bug or an exotic file: quarantine it, go on
        log.exception("unexpected error on %s", item.uri)
        res.quarantined("predict", "unexpected", f"{type(exc).__name__}: {exc}")
        res.ok, res.windows, res.logmels = False, [], []
    return res


def _windows(res: MediaResult, audio: list[tuple[float, np.ndarray]], chain_cfg: Any, pcfg: Any, sr: int, *,
             given: bool) -> None:
    """Plan the windows over ``res.regions`` and run the chain on each.

    ``audio``: the decoded (start_s, samples) spans: with ``given`` segments one per region,
    in the regions' order; else one span, the whole file.
    """
    from lssed.predict.segments import plan_windows
    from lssed.preprocess.chain import ChainError, process_samples

    for w in plan_windows(res.regions, float(res.duration_s or 0.0), pcfg):
        start, samples = audio[w.region] if given else audio[0]
        i0 = max(int(round((w.start_s - start) * sr)), 0)
        i1 = min(int(round((w.end_s - start) * sr)), samples.size)
        if given:
            # a window at a segment's edge takes the decoded samples exactly (window times are
            # rounded to 0.1 ms), so a segment that is one window is the very utterance a
            # run's shards hold for it
            region_start, region_end = res.regions[w.region]
            if abs(w.start_s - region_start) < 1e-3:
                i0 = 0
            if abs(w.end_s - region_end) < 1e-3:
                i1 = samples.size
        try:
            processed = process_samples(samples[i0:i1], chain_cfg)
        except ChainError as exc:
            res.quarantined(exc.stage, exc.code, f"window {_span(w.start_s, w.end_s)}: {exc}")
            continue
        res.windows.append(w)
        res.logmels.append(processed.logmel)


def result_rows(res: MediaResult) -> list[dict[str, Any]]:
    """The rows of one media's result (:data:`ROW_SCHEMA`): its windows, its quarantine, one media row."""
    rows: list[dict[str, Any]] = []
    for w, mel in zip(res.windows, res.logmels):
        rows.append({"kind": WINDOW, "media": res.media, "start_s": float(w.start_s), "end_s": float(w.end_s),
                     "region": int(w.region), "flags": ";".join(w.flags), "n_mels": int(mel.shape[0]),
                     "n_frames": int(mel.shape[1]), "logmel": mel.reshape(-1)})
    rows.extend({"kind": QUARANTINE, **q} for q in res.quarantine)
    rows.append({"kind": MEDIA, "media": res.media, "ok": res.ok, "duration_s": res.duration_s,
                 "regions": json.dumps([[float(s), float(e)] for s, e in res.regions])})
    return rows


def rows_table(rows: list[dict[str, Any]], schema: pa.Schema = ROW_SCHEMA) -> pa.Table:
    cols = {}
    for f in schema:
        values = [r.get(f.name) for r in rows]
        if f.name == "logmel":
            cols[f.name] = _list_array(values)
        else:
            cols[f.name] = pa.array(values, f.type)
    return pa.table(cols, schema=schema)


def _list_array(values: list[np.ndarray | None]) -> pa.Array:
    # one flat buffer plus offsets: no per-element Python objects for the log-mel values
    present = [v for v in values if v is not None]
    lengths = np.array([0 if v is None else v.size for v in values], dtype=np.int64)
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(present).astype(np.float32, copy=False) if present else np.zeros(0, np.float32)
    mask = pa.array([v is None for v in values])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.float32()), mask=mask)


def predict_windows(predictor: Any, table: pa.Table, batch_size: int) -> list[np.ndarray | None]:
    """Probabilities for the window rows of ``table`` (None for other rows), batched by exact length."""
    kinds = table.column("kind").to_pylist()
    frames = table.column("n_frames").to_pylist()
    mels = table.column("n_mels").to_pylist()
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, kind in enumerate(kinds):
        if kind == WINDOW:
            by_shape.setdefault((int(mels[i]), int(frames[i])), []).append(i)
    out: list[np.ndarray | None] = [None] * table.num_rows
    logmel = table.column("logmel")
    for (n_mels, n_frames), idx in by_shape.items():
        for b in range(0, len(idx), max(1, batch_size)):
            part = idx[b:b + batch_size]
            x = np.stack([np.asarray(logmel[i].values.to_numpy(zero_copy_only=False), dtype=np.float32)
                          .reshape(n_mels, n_frames) for i in part])[:, None]
            probs = predictor(x)
            for i, p in zip(part, probs):
                out[i] = np.asarray(p, dtype=np.float32)
    return out


# --------------------------------------------------------------------------- Ray glue


class MediaWorker:
    """CPU actor: media rows (``media``, ``segments`` JSON or null) -> window/quarantine/media rows."""

    def __init__(self, chain_cfg: Any, pcfg: Any, method: str, storage: Any) -> None:
        import os

        # parallelism comes from the pool; one core per actor. No torch here: decoding, VAD
        # (onnxruntime), the chain and its numpy log-mel need none (torchgate imports it itself).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.chain_cfg, self.pcfg, self.method, self.storage = chain_cfg, pcfg, method, storage

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows: list[dict[str, Any]] = []
        for rec in batch.to_pylist():
            spans = json.loads(rec["segments"]) if rec["segments"] else None
            given = tuple((float(s), float(e)) for s, e in spans) if spans is not None else None
            item = MediaInput(rec["media"], given)
            rows.extend(result_rows(prepare_media(item, self.chain_cfg, self.pcfg, method=self.method,
                                                  storage=self.storage)))
        return rows_table(rows)


class ModelWorker:
    """Model actor (a GPU when it was given one): adds ``probabilities`` and drops the log-mel."""

    def __init__(self, spec: Any, batch_size: int, use_gpu: bool) -> None:
        import torch

        from lssed.predict.model import load_predictor

        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        if device == "cpu":
            torch.set_num_threads(1)
        self.predictor = load_predictor(spec, device=device, threads=1)
        self.batch_size = batch_size
        log.info("model actor: %s on %s", spec.model, self.predictor.device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        probs = predict_windows(self.predictor, batch, self.batch_size)
        out = batch.drop_columns(["logmel"])
        values = [None if p is None else p.tolist() for p in probs]
        return out.append_column("probabilities", pa.array(values, pa.list_(pa.float32())))


def media_table(items: Sequence[MediaInput]) -> pa.Table:
    return pa.table({"media": [m.uri for m in items],
                     "segments": [None if m.segments is None else json.dumps([list(s) for s in m.segments])
                                  for m in items]})


def plan_actors(pcfg: Any, n_media: int, use_gpu: bool) -> tuple[int, int]:
    """(media actors, model actors): ``predict.decode_actors`` or the CPUs free beside the model actors."""
    import ray

    model = max(1, int(pcfg.model_actors))
    free = float(ray.available_resources().get("CPU", 1.0))
    decode = pcfg.decode_actors or max(1, int(free) - (0 if use_gpu else model))
    return max(1, min(int(decode), n_media)), model


def build_dataset(items: Sequence[MediaInput], spec: Any, pcfg: Any, *, method: str, media_storage: Any,
                  use_gpu: bool) -> Any:
    """The lazy Ray Dataset: media -> windows (CPU pool) -> probabilities (model pool)."""
    import ray

    decode_actors, model_actors = plan_actors(pcfg, len(items), use_gpu)
    log.info("predict: %d media on %d CPU actor(s); the model on %d %s actor(s)", len(items), decode_actors,
             model_actors, "GPU" if use_gpu else "CPU")
    # a block per media file (up to a bound) so that every CPU actor gets files to decode
    ds = ray.data.from_arrow(media_table(items)).repartition(min(len(items), 10_000))
    ds = ds.map_batches(
        MediaWorker, batch_size=1, batch_format="pyarrow",
        # a fixed pool (an autoscaling one cannot grow with one task in flight per actor); one
        # file at a time per actor, as files take seconds to minutes each
        compute=ray.data.ActorPoolStrategy(size=decode_actors, max_tasks_in_flight_per_actor=1),
        num_cpus=1,
        fn_constructor_kwargs={"chain_cfg": spec.chain_config(), "pcfg": pcfg, "method": method,
                               "storage": media_storage},
    )
    return ds.map_batches(
        ModelWorker, batch_size=max(1, int(pcfg.batch_size)), batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=model_actors),
        **({"num_gpus": 1} if use_gpu else {"num_cpus": 1}),
        fn_constructor_kwargs={"spec": spec, "batch_size": int(pcfg.batch_size), "use_gpu": use_gpu},
    )


@dataclass
class Collected:
    """What the driver keeps of the output rows."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    regions: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    durations: dict[str, float | None] = field(default_factory=dict)
    done: int = 0
    quarantined: int = 0


def collect(batches: Iterable[pa.Table], n_media: int, *, every_s: float = 10.0) -> Collected:
    """Gather output rows, logging progress about every ``every_s`` seconds."""
    got = Collected()
    last = time.monotonic()
    for batch in batches:
        for row in batch.to_pylist():
            kind = row["kind"]
            if kind == WINDOW:
                got.windows.append(row)
            elif kind == QUARANTINE:
                got.quarantine.append({k: row[k] for k in ("media", "stage", "code", "reason")})
            else:
                if row["ok"]:  # quarantined media get no summary row and no plot
                    got.regions[row["media"]] = [tuple(r) for r in json.loads(row["regions"] or "[]")]
                    got.durations[row["media"]] = row["duration_s"]
                    got.done += 1
                else:
                    got.quarantined += 1
        if time.monotonic() - last >= every_s:
            last = time.monotonic()
            log.info("predict: %d/%d media done, %d quarantined, %d windows", got.done, n_media, got.quarantined,
                     len(got.windows))
    return got


def timeline_rows(windows: list[dict[str, Any]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Window rows (with ``probabilities``) in media, time order, for the timeline table."""
    rows = []
    for w in sorted(windows, key=lambda r: (r["media"], r["start_s"], r["end_s"])):
        probs = np.asarray(w["probabilities"], dtype=np.float32)
        if probs.shape != (len(class_names),):
            raise RuntimeError(f"the model returned {probs.shape} probabilities for {len(class_names)} classes")
        rows.append({"media": w["media"], "start_s": float(w["start_s"]), "end_s": float(w["end_s"]),
                     "region": int(w["region"]), "flags": w["flags"] or "", "probs": probs})
    return rows


@dataclass(frozen=True)
class PredictResult:
    out: str
    media: int
    done: int
    quarantined: int
    windows: int
    quarantine_rows: int
    files: dict[str, Any]
    wall_s: float


def run_predict(items: Sequence[MediaInput], spec: Any, pcfg: Any, *, out: Any, method: str | None = None,
                media_storage: Any = None, use_gpu: bool | None = None) -> PredictResult:
    """Predict on ``items`` with the model of ``spec`` and write the outputs under ``out`` (a Storage).

    Ray must be initialised. ``use_gpu`` None: ``predict.use_gpu``, else a GPU when the cluster has one.
    """
    from lssed.predict.model import with_file_bytes
    from lssed.predict.timeline import quarantine_table, timeline_table, write_outputs
    from lssed.runtime import cluster_gpus

    t0 = time.perf_counter()
    method = method or pcfg.vad
    if use_gpu is None:
        use_gpu = pcfg.use_gpu if pcfg.use_gpu is not None else cluster_gpus() > 0
    # a model file travels to the model actors through Ray, so actors on other nodes need no
    # copy of the driver's disk
    spec = with_file_bytes(spec)
    ds = build_dataset(items, spec, pcfg, method=method, media_storage=media_storage, use_gpu=bool(use_gpu))
    got = collect(ds.iter_batches(batch_size=None, batch_format="pyarrow"), len(items))
    if got.done + got.quarantined != len(items):  # every input must be accounted for
        raise RuntimeError(f"predict lost media: {len(items)} in, {got.done} done + {got.quarantined} quarantined")
    timeline = timeline_table(timeline_rows(got.windows, spec.class_names), list(spec.class_names))
    quarantine = quarantine_table(sorted(got.quarantine, key=lambda q: (q["media"], q["reason"])))
    files = write_outputs(out, timeline, quarantine, list(spec.class_names), got.regions, got.durations)
    result = PredictResult(out=out.uri, media=len(items), done=got.done, quarantined=got.quarantined,
                           windows=len(got.windows), quarantine_rows=quarantine.num_rows, files=files,
                           wall_s=time.perf_counter() - t0)
    log.info("predict: %d media -> %d done, %d quarantined; %d windows in %.1f s", result.media, result.done,
             result.quarantined, result.windows, result.wall_s)
    return result


def predict(cfg: Any, inputs: Sequence[str], *, out: Any, run: str | None = None, checkpoint: str | None = None,
            segments: str | None = None, classes: tuple[str, ...] | None = None, model: str | None = None,
            trust_pickle: bool = False) -> PredictResult:
    """The whole of `lssed predict`: resolve the model and the inputs (before Ray starts), then run.

    ``cfg``: a validated config (its ``predict``, ``storage`` and ``ray`` sections; with
    ``checkpoint`` a state_dict, also the ``features``/``preprocess`` settings the user states).
    """
    from lssed.errors import UserError
    from lssed.predict.inputs import expand_inputs
    from lssed.predict.model import spec_from_file, spec_from_run
    from lssed.runtime import init_ray
    from lssed.storage import storage_from_config

    if (run is None) == (checkpoint is None):
        raise UserError("give exactly one model: --run RUN_URI (a finished run) or --checkpoint FILE "
                        "(.pt from `lssed models import`, or .onnx / TorchScript from `lssed models export`)")
    spec = spec_from_run(run, cfg.storage) if run else spec_from_file(checkpoint, cfg, class_names=classes,
                                                                         model=model, trust_pickle=trust_pickle)
    items = expand_inputs(inputs, segments_csv=segments, storage_cfg=cfg.storage, extensions=cfg.predict.extensions)
    log.info("predict: %s on %d media (vad %s; settings from the %s)", spec.describe(), len(items), cfg.predict.vad,
             spec.settings_from)
    init_ray(cfg.ray)
    media_storage = storage_from_config(cfg.storage, out.uri)  # endpoint/region for s3:// media
    return run_predict(items, spec, cfg.predict, out=out, media_storage=media_storage)
