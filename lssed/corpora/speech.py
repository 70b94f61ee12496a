"""Speech synthesis with espeak-ng through ctypes (the pip package ``espeakng-loader``).

``espeakng-loader`` ships ``libespeak-ng.so`` and its data directory, so no system package is
needed. espeak-ng keeps global state and is not thread-safe: every call holds one lock, and
the library is initialised once per process. Output is int16 mono at 22,050 Hz.
"""

from __future__ import annotations

import ctypes
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # espeak-ng's fixed output rate

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_chunks: list[np.ndarray] = []


@dataclass(frozen=True)
class Prosody:
    """espeak-ng parameters: rate in words/min (80-450), volume 0-200 (100 normal),
    pitch 0-100 (50 normal), pitch range 0-100 (50 normal)."""

    rate: int = 160
    volume: int = 100
    pitch: int = 50
    range: int = 50


def _on_audio(wav, numsamples, events) -> int:  # called by espeak inside espeak_Synth
    if numsamples > 0 and wav:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0  # 0: continue synthesis


_callback_ref = _CALLBACK(_on_audio)  # kept alive for the process's lifetime


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise RuntimeError("espeak-ng is needed for the demo corpus: pip install espeakng-loader") from exc
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    data_path = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"espeak_Initialize failed or gave an unexpected rate ({rate}); data at {data_path!r}")
    lib.espeak_SetSynthCallback(_callback_ref)
    _lib = lib
    return lib


def synthesize(text: str, voice: str = "en-us", prosody: Prosody = Prosody(), seed: int = 0) -> np.ndarray:
    """Speak ``text`` with an espeak-ng voice (``"en-us+f3"``: voice + variant); int16 at 22,050 Hz.

    espeak-ng draws random numbers (pitch flutter, noise sources); ``seed`` fixes them, so the
    same arguments always give the same samples.
    """
    if not text.strip():
        raise ValueError("synthesize: text is empty")
    with _lock:
        lib = _library()
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ValueError(f"espeak-ng has no voice {voice!r} (try 'en-us', 'en', 'en-us+f3', 'en+m2')")
        for param, value in ((_RATE, prosody.rate), (_VOLUME, prosody.volume), (_PITCH, prosody.pitch),
                             (_RANGE, prosody.range)):
            lib.espeak_SetParameter(param, int(value), 0)
        _chunks.clear()
        lib.espeak_ng_SetRandSeed(int(seed))
        data = text.encode("utf-8") + b"\0"
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise RuntimeError(f"espeak_Synth failed with code {err}")
        lib.espeak_Synchronize()
        out = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
    return out.astype(np.int16, copy=False)


def synthesize_batch(items: Sequence[tuple[str, str, Prosody, int]]) -> list[np.ndarray]:
    """Synthesise ``(text, voice, prosody, seed)`` items in a fresh child process, in order.

    espeak-ng carries state from one utterance to the next (a few samples of timing differ
    even with the random seed fixed), so the same list gives the same samples only when it
    starts from a fresh library: one child process per batch guarantees that.
    """
    payload = json.dumps([[t, v, dataclasses.asdict(p), int(s)] for t, v, p, s in items])
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "lssed.corpora.speech"], input=payload.encode(), capture_output=True, env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng synthesis failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
    with np.load(io.BytesIO(proc.stdout)) as npz:
        return [npz[f"a{i}"] for i in range(len(items))]


def _child_main() -> None:
    items = json.loads(sys.stdin.buffer.read())
    out = {f"a{i}": synthesize(t, v, Prosody(**p), s) for i, (t, v, p, s) in enumerate(items)}
    buf = io.BytesIO()
    np.savez(buf, **out)
    sys.stdout.buffer.write(buf.getvalue())
    sys.stdout.flush()


if __name__ == "__main__":
    _child_main()
