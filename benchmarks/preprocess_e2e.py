"""End to end: `lssed preprocess` as a user runs it vs a plain sequential script (issue 13 item 6).

Both paths run as child processes of this benchmark, over the same held-out manifest rows,
interleaved in one run (A, B, A, B for ``--repeats 2``), so both pay interpreter start-up and
imports, and load from other users of a shared machine falls on both alike:

(A) ``lssed preprocess MANIFEST --out DIR`` through the installed console script
    (``[project.scripts] lssed = "lssed.cli:main"``: ``<venv>/bin/lssed``), with a fresh
    output folder each time so nothing is skipped. Its wall time runs from process start to
    exit: Python imports, Ray's local start-up, the pipeline, the row check, the commit and
    Ray's shutdown. The config is the one a user gets (``preprocess.num_actors`` unset: as
    many actors as the local Ray's free logical CPUs; the count is read off the CLI's log and
    reported) unless ``--actors`` passes ``--set preprocess.num_actors=N``. The children get
    the caller's environment (plus ``RAY_AUTH_MODE=disabled`` if unset, as this project's
    tests run Ray), thread settings included. The child's stderr lines are
    time-stamped here as they arrive, which splits its wall time into phases (imports,
    Ray start-up, first chunk, last chunk, commit, shutdown).
(B) a plain sequential script a researcher would write (:func:`plain_preprocess`, this
    file run with ``--plain``; it imports nothing from lssed): one utterance at a time,
    open the media file with FFmpeg's libraries through PyAV (this machine has no
    ``ffmpeg`` binary, so no ``ffmpeg`` subprocess; PyAV is the same libavformat /
    libavcodec / libswresample), seek to the segment, decode, resample to 16 kHz mono
    float32 with ``av.AudioResampler``; ``noisereduce.reduce_noise(y, sr=16000)`` with its
    defaults (non-stationary); gain x2 clipped to [-1, 1]; ``librosa.feature.melspectrogram``
    (n_fft 1024, hop 512, 128 mels; Hann, centred, power 2, as lssed's features);
    ``log(mel + 1e-6)`` (lssed's ``features.log_offset``); all rows written to one Parquet
    file with pyarrow. Its wall time includes its imports and every first-call cost, as a
    user pays them on every run: librosa's lazy imports and loading its numba-jitted helpers
    from numba's on-disk cache (``cache=True``, in librosa's ``__pycache__``). Compiling them
    (~20 s on this machine) happens once per installation, on its first ever call, and is not
    counted: it is measured apart, in a child with an empty ``NUMBA_CACHE_DIR``
    (``b_librosa_first_call``; skip with ``--no-jit-probe``). The child also reports how much
    of its wall time was imports and its first utterance, so they can be read apart.

CPU seconds: the CPU of the benchmark's whole process tree while a child runs, minus the
benchmark process itself, sampled from /proc every 0.2 s (benchmarks/cputree.py). For (A)
that is the lssed driver plus Ray's GCS, raylet, dashboard and agents, and every worker
and actor: all are its descendants. A process that ends between two samples loses at most
one interval of CPU. ``getrusage(RUSAGE_CHILDREN)`` is reported too: it sees only children
that were waited for with their own waited-for children, so for (A) it misses most of
Ray's processes; for (B), one process, the two agree.

Data: the demo corpus (lssed.corpora.demo), synthesised once into --work and prepared with
the default speaker split; the held-out rows are its test split (the manifest's ``split``
column; a manifest without one is used whole). The defaults give about 40 minutes of
held-out audio. The benchmark checks that (A) and (B) produced the same rows and reports
how close their log-mels are (mean |delta| and correlation for matching utt_ids; same
decoder library, same denoiser, same mel, so they should be close). Prints a table and
writes JSON.

    PYTHONPATH=. .venv/bin/python benchmarks/preprocess_e2e.py                    # ~40 min held out, 2 repeats
    PYTHONPATH=. .venv/bin/python benchmarks/preprocess_e2e.py --actors 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
log = logging.getLogger("bench.preprocess_e2e")

SR = 16000
N_FFT, HOP, N_MELS = 1024, 512, 128
LOG_FLOOR = 1e-6  # lssed's features.log_offset
GAIN = 2.0
PREROLL_S = 0.5  # seek this far before a segment so AAC/Opus decoders settle


# --------------------------------------------------------------------------- (B) the plain script


def decode_segment(path: str, start_s: float, end_s: float) -> Any:
    """Samples [start_s, end_s) of ``path``'s first audio stream, 16 kHz mono float32 (PyAV)."""
    import av
    import numpy as np

    with av.open(path) as container:
        stream = container.streams.audio[0]
        if start_s > PREROLL_S:  # near the start: decode from the beginning
            offset = int((start_s - PREROLL_S) / stream.time_base) + (stream.start_time or 0)
            container.seek(offset, stream=stream, backward=True)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SR)
        pieces, t0 = [], None
        for frame in container.decode(stream):
            if t0 is None:
                t0 = frame.time if frame.time is not None else 0.0
            for out in resampler.resample(frame):
                pieces.append(out.to_ndarray()[0])
            if frame.time is not None and frame.time > end_s:
                break
        for out in resampler.resample(None):
            pieces.append(out.to_ndarray()[0])
    y = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    skip = int(round((start_s - (t0 or 0.0)) * SR))
    if skip < 0:
        y, skip = np.concatenate([np.zeros(-skip, np.float32), y]), 0
    return y[skip: skip + int(round((end_s - start_s) * SR))]


def plain_preprocess(manifest: str, out: str) -> dict[str, Any]:
    """The plain script: manifest rows -> decode -> noisereduce -> x2 -> log-mel -> one Parquet file.

    Returns its own phase timings (imports, first utterance, the rest, the write) and counts.
    """
    t_start = time.perf_counter()
    import av  # noqa: F401
    import librosa
    import noisereduce as nr
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    t_imported = time.perf_counter()
    rows = pq.read_table(manifest).to_pylist()
    base = Path(manifest).resolve().parent
    ids, mels, n_frames, failed = [], [], [], {}
    t_first = None
    audio_s = 0.0
    for row in rows:
        media = row["media_uri"]
        path = media if os.path.isabs(media) else str(base / media)
        try:
            y = decode_segment(path, float(row["start_s"] or 0.0), float(row["end_s"]))
            y = nr.reduce_noise(y=y, sr=SR).astype(np.float32)
            y = np.clip(y * GAIN, -1.0, 1.0)
            mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
            logmel = np.log(mel + LOG_FLOOR).astype(np.float32)
        except Exception as exc:  # a researcher's script would skip and count a bad file
            failed[row["utt_id"]] = f"{type(exc).__name__}: {exc}"
            continue
        audio_s += y.size / SR
        ids.append(row["utt_id"])
        mels.append(logmel.ravel())
        n_frames.append(logmel.shape[1])
        if t_first is None:
            t_first = time.perf_counter()
    t_done = time.perf_counter()
    offsets = np.concatenate([[0], np.cumsum([m.size for m in mels])]).astype(np.int32)
    flat = np.concatenate(mels) if mels else np.zeros(0, np.float32)
    table = pa.table({
        "utt_id": pa.array(ids, pa.string()),
        "n_mels": pa.array([N_MELS] * len(ids), pa.int32()),
        "n_frames": pa.array(n_frames, pa.int32()),
        "logmel": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32())),
    })
    pq.write_table(table, out)
    t_end = time.perf_counter()
    first = (t_first or t_done) - t_imported
    return {"rows": len(ids), "rows_failed": len(failed), "failed": dict(list(failed.items())[:5]),
            "audio_s": audio_s, "imports_s": t_imported - t_start, "first_utterance_s": first,
            "rest_s": t_done - (t_first or t_done), "write_s": t_end - t_done}


# --------------------------------------------------------------------------- data


def build_heldout(work: Path, speakers: int, per_class: int, seed: int, manifest: str | None,
                  all_rows: bool = False) -> tuple[Path, str]:
    """The held-out manifest (the test split's rows, else all) and a description of it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sys.path.insert(0, str(HERE))
    from preprocess import build_manifest  # benchmarks/preprocess.py: corpus + manifest cached under work

    full = Path(manifest) if manifest else build_manifest(work, speakers, per_class, seed)
    table = pq.read_table(full)
    if "split" not in table.column_names:
        return full, f"{full.name}: whole manifest (no split column)"
    held = table if all_rows else table.filter(pc.equal(table.column("split"), "test"))
    if held.num_rows == 0:
        raise SystemExit(f"{full} has no test rows; use a bigger corpus")
    # written into work (not beside a manifest passed in), so relative media paths become absolute
    base = full.resolve().parent
    media = [m if "://" in m or os.path.isabs(m) else str(base / m) for m in held.column("media_uri").to_pylist()]
    held = held.set_column(held.column_names.index("media_uri"), "media_uri", pa.array(media, pa.string()))
    out = work / f"{full.stem}.{'all' if all_rows else 'heldout'}.parquet"
    pq.write_table(held, out)
    speakers_held = len(set(held.column("speaker").to_pylist())) if "speaker" in held.column_names else 0
    what = "every split" if all_rows else "test split"
    return out, f"{full.name}: {what} ({held.num_rows} of {table.num_rows} rows, {speakers_held} speakers)"


# --------------------------------------------------------------------------- running the children


class Child:
    """A child process run to completion: wall time, CPU of its process tree, time-stamped stderr."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.cmd, self.env = cmd, env
        self.lines: list[tuple[float, str]] = []
        self.stdout = ""

    def run(self) -> dict[str, Any]:
        from cputree import CpuTree

        me = os.getpid()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with CpuTree(interval_s=0.2) as tree:
            t0 = time.perf_counter()
            proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=ROOT)
            reader = threading.Thread(target=self._read_stderr, args=(proc, t0), daemon=True)
            reader.start()
            self.stdout = proc.stdout.read()
            rc = proc.wait()
            wall = time.perf_counter() - t0
            reader.join()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if rc != 0:
            tail = "\n".join(line for _, line in self.lines[-30:])
            raise RuntimeError(f"{' '.join(self.cmd)} exited with {rc}:\n{tail}")
        tree_cpu = sum(cpu for pid, (_, cpu) in tree.by_pid().items() if pid != me)
        rusage = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        by_name = {name: round(cpu, 2) for name, cpu in tree.by_name().items() if cpu >= 0.05}
        return {"wall_s": wall, "cpu_tree_s": tree_cpu, "cpu_rusage_children_s": rusage, "cpu_by_process": by_name}

    def _read_stderr(self, proc: subprocess.Popen, t0: float) -> None:
        for line in proc.stderr:
            self.lines.append((time.perf_counter() - t0, line.rstrip("\n")))


# The CLI's own log lines that mark its phases (lssed.runtime, lssed.preprocess.pipeline / stage).
PHASE_MARKS = (
    ("ray_start", re.compile(r"starting Ray")),
    ("pipeline_start", re.compile(r"preprocessing \d+ chunk\(s\) on \d+ actor\(s\)")),
    ("first_chunk", re.compile(r"chunk \d+ done \(1/")),
    ("committed", re.compile(r"features committed at")),
)


def phases(lines: list[tuple[float, str]], wall_s: float) -> dict[str, float]:
    """Seconds from process start at which each phase mark appeared, and the exit."""
    marks: dict[str, float] = {}
    last_chunk = None
    for t, line in lines:
        for name, pat in PHASE_MARKS:
            if name not in marks and pat.search(line):
                marks[name] = t
        if re.search(r"chunk \d+ done \((\d+)/\1 this run\)", line):
            last_chunk = t
    if last_chunk is not None:
        marks["last_chunk"] = last_chunk
    marks["exit"] = wall_s
    return marks


def phase_spans(marks: dict[str, float]) -> dict[str, float]:
    """Durations between the marks: what each part of the CLI's run took."""
    order = [("imports + manifest + planning", None, "ray_start"), ("Ray start-up", "ray_start", "pipeline_start"),
             ("pool start + first chunk", "pipeline_start", "first_chunk"),
             ("remaining chunks", "first_chunk", "last_chunk"), ("row check + commit", "last_chunk", "committed"),
             ("Ray shutdown + exit", "committed", "exit")]
    out = {}
    for name, a, b in order:
        ta = 0.0 if a is None else marks.get(a)
        tb = marks.get(b)
        if ta is not None and tb is not None:
            out[name] = tb - ta
    return out


def run_lssed(manifest: Path, out_dir: Path, actors: int | None, env: dict[str, str]) -> dict[str, Any]:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cmd = [lssed_command(), "preprocess", str(manifest), "--out", str(out_dir)]
    if actors:
        cmd += ["--set", f"preprocess.num_actors={actors}"]
    child = Child(cmd, env)
    res = child.run()
    success = sorted(out_dir.glob("features/*/_SUCCESS.json"))
    if len(success) != 1:
        raise RuntimeError(f"expected one committed feature set under {out_dir}, found {len(success)}")
    marker = json.loads(success[0].read_text())
    marks = phases(child.lines, res["wall_s"])
    m = re.search(r"on (\d+) actor\(s\)", "\n".join(line for _, line in child.lines))
    res.update({"cmd": cmd, "features": str(success[0].parent), "rows": marker["counts"]["rows_out"],
                "rows_quarantined": marker["counts"]["rows_quarantined"],
                "audio_s": marker["stats"]["output_audio_h"] * 3600, "actors": int(m.group(1)) if m else None,
                "stage_wall_s": marker["stats"]["wall_s"], "pipeline_wall_s": marker["stats"]["this_run"]["pipeline_wall_s"],
                "phase_marks_s": marks, "phases_s": phase_spans(marks),
                "log": [f"{t:7.2f} {line}" for t, line in child.lines if "lssed" in line or "ray" in line.lower()][:60]})
    return res


def run_plain(manifest: Path, out_file: Path, env: dict[str, str]) -> dict[str, Any]:
    if out_file.exists():
        out_file.unlink()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--plain", str(manifest), "--plain-out", str(out_file)]
    child = Child(cmd, env)
    res = child.run()
    res.update({"cmd": cmd, "output": str(out_file), **json.loads(child.stdout.strip().splitlines()[-1])})
    return res


JIT_PROBE = """
import time
t = time.perf_counter()
import librosa, numpy as np
t1 = time.perf_counter()
librosa.feature.melspectrogram(y=np.zeros(16000, np.float32), sr=16000, n_fft=1024, hop_length=512, n_mels=128)
print(t1 - t, time.perf_counter() - t1)
"""


def jit_probe(env: dict[str, str], work: Path) -> dict[str, float]:
    """librosa's first melspectrogram call with numba's on-disk cache as installed (what (B)
    pays every run) and with an empty cache (``NUMBA_CACHE_DIR``: what the first run on a
    fresh install pays once, compiling librosa's jitted helpers)."""
    out = {}
    cold_dir = work / "numba-cache-cold"
    for name, extra in (("cached", {}), ("cold", {"NUMBA_CACHE_DIR": str(cold_dir)})):
        if cold_dir.exists():
            shutil.rmtree(cold_dir)
        res = subprocess.run([sys.executable, "-c", JIT_PROBE], env={**env, **extra}, capture_output=True, text=True,
                             check=True)
        imports, first = map(float, res.stdout.split())
        out[f"{name}_import_s"], out[f"{name}_first_call_s"] = imports, first
    shutil.rmtree(cold_dir, ignore_errors=True)
    return out


def lssed_command() -> str:
    """The console script installed beside this interpreter (``<venv>/bin/lssed``)."""
    script = Path(sys.executable).with_name("lssed")
    if not script.exists():
        raise SystemExit(f"no {script}: install lssed into this interpreter's environment (make setup)")
    return str(script)


# --------------------------------------------------------------------------- checking the outputs


def compare_logmels(features_dir: str, plain_file: str) -> dict[str, Any]:
    """(A)'s shard log-mels vs (B)'s for matching utt_ids: shapes, mean |delta|, correlation."""
    import numpy as np
    import pyarrow.parquet as pq

    cols = ["utt_id", "n_mels", "n_frames", "logmel"]
    a = pq.read_table(Path(features_dir) / "shards", columns=cols).to_pydict()
    b = pq.read_table(plain_file, columns=cols).to_pydict()
    b_at = {u: i for i, u in enumerate(b["utt_id"])}
    common = [i for i, u in enumerate(a["utt_id"]) if u in b_at]
    shape_mismatch, abs_sum, count, corrs = [], 0.0, 0, []
    for i in common:
        j = b_at[a["utt_id"][i]]
        sa, sb = (a["n_mels"][i], a["n_frames"][i]), (b["n_mels"][j], b["n_frames"][j])
        if sa != sb:
            shape_mismatch.append((a["utt_id"][i], sa, sb))
            continue
        x, y = np.asarray(a["logmel"][i], np.float64), np.asarray(b["logmel"][j], np.float64)
        abs_sum += float(np.abs(x - y).sum())
        count += x.size
        corrs.append(float(np.corrcoef(x, y)[0, 1]))
    return {"rows_a": len(a["utt_id"]), "rows_b": len(b["utt_id"]), "matched": len(common),
            "only_a": len(a["utt_id"]) - len(common), "only_b": len(b["utt_id"]) - len(common),
            "shape_mismatches": len(shape_mismatch), "shape_mismatch_examples": shape_mismatch[:3],
            "mean_abs_delta_logmel": abs_sum / count if count else None,
            "corr_mean": float(np.mean(corrs)) if corrs else None, "corr_min": float(np.min(corrs)) if corrs else None,
            "logmel_std_a": float(np.std(np.concatenate([np.asarray(a["logmel"][i], np.float32) for i in common[:200]])))
            if common else None}


# --------------------------------------------------------------------------- main


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("lssed", "ray", "torch", "torchaudio", "noisereduce", "av", "librosa", "numba", "numpy", "pyarrow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def summarise(walls: list[float]) -> dict[str, float]:
    return {"best": min(walls), "median": statistics.median(walls)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=".benchout/preprocess_e2e", help="corpus cache and outputs")
    p.add_argument("--out", default=".benchout/preprocess_e2e.json", help="JSON results")
    p.add_argument("--speakers", type=int, default=24, help="demo corpus speakers (test split: ~1/5 of them)")
    p.add_argument("--per-class", type=int, default=52, help="demo utterances per speaker and class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--manifest", help="use this manifest (its test split) instead of building the demo corpus")
    p.add_argument("--all-rows", action="store_true",
                   help="every row of the manifest, not only its test split (to see how the ratio grows with size)")
    p.add_argument("--repeats", type=int, default=2, help="A, B pairs, interleaved")
    p.add_argument("--actors", type=int, default=None,
                   help="--set preprocess.num_actors=N for (A); default: unset, as a user runs it")
    p.add_argument("--no-jit-probe", dest="jit_probe", action="store_false",
                   help="skip measuring librosa's first call with a cold numba cache")
    p.add_argument("--plain", metavar="MANIFEST", help=argparse.SUPPRESS)  # (B), run as a child
    p.add_argument("--plain-out", metavar="PARQUET", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.plain:
        print(json.dumps(plain_preprocess(args.plain, args.plain_out)))
        return 0

    # the children get the caller's environment as it is: benchmarks/preprocess.py (imported
    # for its corpus cache) sets OMP_NUM_THREADS=1 in this process, which a user would not have
    env = dict(os.environ)
    env.setdefault("RAY_AUTH_MODE", "disabled")  # as the project's tests and CI run Ray here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    sys.path.insert(0, str(HERE))
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    load_start = loadavg()
    manifest, held_desc = build_heldout(work, args.speakers, args.per_class, args.seed, args.manifest, args.all_rows)
    log.info("held-out manifest %s (%s)", manifest, held_desc)

    runs_a, runs_b, loads = [], [], []
    for k in range(args.repeats):
        loads.append({"before_a": loadavg()})
        log.info("repeat %d/%d: (A) lssed preprocess", k + 1, args.repeats)
        runs_a.append(run_lssed(manifest, work / f"lssed-out-{k}", args.actors, env))
        log.info("  (A) %.1f s wall, %.1f CPU-s; phases %s", runs_a[-1]["wall_s"], runs_a[-1]["cpu_tree_s"],
                 {n: round(s, 1) for n, s in runs_a[-1]["phases_s"].items()})
        loads[-1]["before_b"] = loadavg()
        log.info("repeat %d/%d: (B) plain script", k + 1, args.repeats)
        runs_b.append(run_plain(manifest, work / f"plain-{k}.parquet", env))
        log.info("  (B) %.1f s wall, %.1f CPU-s", runs_b[-1]["wall_s"], runs_b[-1]["cpu_tree_s"])
    load_end = loadavg()
    jit = jit_probe(env, work) if args.jit_probe else {}

    check = compare_logmels(runs_a[0]["features"], runs_b[0]["output"])
    rows_equal = all(a["rows"] == b["rows"] for a, b in zip(runs_a, runs_b)) and check["matched"] == check["rows_a"]
    wall_a, wall_b = summarise([r["wall_s"] for r in runs_a]), summarise([r["wall_s"] for r in runs_b])
    audio_s = runs_b[0]["audio_s"]
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version()},
        "versions": versions(),
        "git_head": _git_head(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": {"manifest": str(manifest), "held_out": held_desc, "rows": runs_b[0]["rows"] + runs_b[0]["rows_failed"],
                 "audio_s": audio_s},
        "commands": {"a": runs_a[0]["cmd"], "b": runs_b[0]["cmd"]},
        "child_env": {k: env.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                              "RAY_AUTH_MODE", "RAY_DATA_DISABLE_PROGRESS_BARS", "NUMBA_CACHE_DIR")},
        "loadavg": {"start": load_start, "per_repeat": loads, "end": load_end},
        "a": {"wall_s": [r["wall_s"] for r in runs_a], **{f"wall_{k}_s": v for k, v in wall_a.items()},
              "runs": [{k: v for k, v in r.items() if k != "cmd"} for r in runs_a]},
        "b": {"wall_s": [r["wall_s"] for r in runs_b], **{f"wall_{k}_s": v for k, v in wall_b.items()},
              "runs": [{k: v for k, v in r.items() if k != "cmd"} for r in runs_b]},
        "rows": {"a": [r["rows"] for r in runs_a], "b": [r["rows"] for r in runs_b], "equal": rows_equal},
        "logmel_check": check,
        "b_librosa_first_call": jit,
        "speedup": wall_b["median"] / wall_a["median"],
        "speedup_best": wall_b["best"] / wall_a["best"],
        "cpu_ratio_a_over_b": statistics.median(r["cpu_tree_s"] for r in runs_a)
        / statistics.median(r["cpu_tree_s"] for r in runs_b),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    print(f"JSON: {out}")
    return 0 if rows_equal else 1


def _git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def print_table(r: dict[str, Any]) -> None:
    audio = r["data"]["audio_s"]
    a_runs, b_runs = r["a"]["runs"], r["b"]["runs"]
    print(f"\nEnd to end preprocessing ({r['date']}, {r['machine']['machine']}, {r['machine']['cpu_count']} cores, "
          f"HEAD {r['git_head']}; load avg {r['loadavg']['start'][0]} at start, {r['loadavg']['end'][0]} at end)")
    print(f"held out: {r['data']['held_out']}, {audio / 60:.1f} min of audio; (A) {a_runs[0].get('actors')} actors\n")
    print("| path | repeat | wall s | CPU s (process tree) | audio s | audio-s per wall-s | B/A wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, (a, b) in enumerate(zip(a_runs, b_runs), 1):
        print(f"| (A) lssed preprocess | {k} | {a['wall_s']:.1f} | {a['cpu_tree_s']:.1f} | {a['audio_s']:.0f} | "
              f"{a['audio_s'] / a['wall_s']:.1f} | |")
        print(f"| (B) plain script | {k} | {b['wall_s']:.1f} | {b['cpu_tree_s']:.1f} | {b['audio_s']:.0f} | "
              f"{b['audio_s'] / b['wall_s']:.1f} | {b['wall_s'] / a['wall_s']:.2f} |")
    for name, key in (("best", "wall_best_s"), ("median", "wall_median_s")):
        a, b = r["a"][key], r["b"][key]
        print(f"| (A) {name} | | {a:.1f} | | {audio:.0f} | {audio / a:.1f} | |")
        print(f"| (B) {name} | | {b:.1f} | | {audio:.0f} | {audio / b:.1f} | {b / a:.2f} |")
    print(f"\nspeedup (B wall / A wall, median): {r['speedup']:.2f}x (best: {r['speedup_best']:.2f}x); "
          f"CPU A/B {r['cpu_ratio_a_over_b']:.2f}")
    print("\n(A) phases, from the CLI's log lines as they arrived (s):")
    names = list(a_runs[0]["phases_s"])
    print("| repeat | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for k, a in enumerate(a_runs, 1):
        print(f"| {k} | " + " | ".join(f"{a['phases_s'].get(n, float('nan')):.1f}" for n in names) + " |")
    b0 = b_runs[0]
    print(f"\n(B) repeat 1: imports {b0['imports_s']:.1f} s, first utterance {b0['first_utterance_s']:.2f} s, "
          f"the rest {b0['rest_s']:.1f} s, Parquet write {b0['write_s']:.2f} s; rows failed {b0['rows_failed']}")
    jit = r.get("b_librosa_first_call")
    if jit:
        print(f"librosa's first melspectrogram call: {jit['cached_first_call_s']:.1f} s with numba's on-disk cache "
              f"(counted in B), {jit['cold_first_call_s']:.1f} s with an empty one (a fresh install's first run "
              "pays it once; not counted)")
    c = r["logmel_check"]
    print(f"rows: A {r['rows']['a']}, B {r['rows']['b']}, equal: {r['rows']['equal']}; log-mel A vs B over "
          f"{c['matched']} utterances: mean |delta| {c['mean_abs_delta_logmel']:.3f} (A's log-mel std "
          f"{c['logmel_std_a']:.2f}), correlation mean {c['corr_mean']:.4f}, min {c['corr_min']:.4f}; "
          f"shape mismatches {c['shape_mismatches']}")


if __name__ == "__main__":
    raise SystemExit(main())
