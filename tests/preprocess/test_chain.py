"""The pure per-utterance chain: gain/clipping, denoising, log-mel equality with librosa, quarantine."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from lssed.config import load_config
from lssed.preprocess.chain import apply_gain, from_int16, merge_stats, process_chunk, process_samples, to_int16
from lssed.preprocess.decode import Segment, decode_file
from lssed.preprocess.denoise import denoise
from lssed.preprocess.stage import read_manifest
from lssed.schema import QUARANTINE_SCHEMA, SHARD_SCHEMA


def test_gain_counts_every_clipped_sample():
    x = np.array([0.1, 0.6, -0.7, 0.5, -0.5], np.float32)
    y, clipped = apply_gain(x, 2.0)
    np.testing.assert_allclose(y, [0.2, 1.0, -1.0, 1.0, -1.0])
    assert clipped == 2  # exactly +-1.0 after the gain is not clipping
    assert apply_gain(x, 1.0)[1] == 0


def test_int16_round_trip():
    x = np.linspace(-1, 0.9999, 1001, dtype=np.float32)
    np.testing.assert_allclose(from_int16(to_int16(x)), x, atol=1 / 32768)
    assert to_int16(np.array([1.0], np.float32))[0] == 32767  # saturates, no wrap-around


@pytest.mark.parametrize("method", ["noisereduce", "noisereduce-stationary"])
def test_denoise_improves_the_speech_to_noise_ratio(method):
    import media

    rng = np.random.default_rng(0)
    t = np.arange(4 * 16000) / 16000
    voice = (media.speechlike(4.0, 16000, 0)[0] * ((t > 1.0) & (t < 3.0))).astype(np.float32)
    noise = (0.03 * rng.standard_normal(t.size)).astype(np.float32)
    out = denoise(voice + noise, 16000, method)
    assert out.shape == voice.shape and out.dtype == np.float32
    quiet = (t < 0.9) | (t > 3.1)  # noise only
    loud = (t > 1.2) & (t < 2.8)
    assert np.std(out[quiet]) < 0.2 * np.std(noise[quiet])
    snr_in = np.var((voice + noise)[loud]) / np.var(noise[quiet])
    snr_out = np.var(out[loud]) / np.var(out[quiet])
    assert snr_out > 10 * snr_in
    assert np.corrcoef(out[loud], voice[loud])[0, 1] > 0.9  # the speech keeps its shape


def test_unknown_denoise_method_says_what_is_valid():
    with pytest.raises(ValueError, match="noisereduce-stationary"):
        denoise(np.zeros(100, np.float32), 16000, "wiener")


@pytest.mark.parametrize("log", ["none", "log"])
def test_mel_power_equals_librosa(media_set, log):
    """denoise=none, gain=1: the chain's mel power equals librosa's melspectrogram (1e-4 relative)."""
    librosa = pytest.importorskip("librosa")
    cfg = load_config(None, ["preprocess.denoise=none", "preprocess.gain=1", f"features.log={log}"])
    (samples,) = decode_file(str(media_set["mp4_aac_video"]), [Segment(0.5, 3.7)])
    pcm_samples = from_int16(to_int16(samples))  # what the shard stores (int16 PCM)
    ref = librosa.feature.melspectrogram(y=pcm_samples, sr=16000, n_fft=1024, hop_length=512, n_mels=128)
    got = process_samples(samples, cfg)
    assert got.clipped_samples == 0
    np.testing.assert_array_equal(got.waveform, pcm_samples)  # no denoise, gain 1: the same samples
    assert np.abs(pcm_samples - samples).max() <= 1 / 32768 + 1e-9
    assert got.logmel.shape == ref.shape == (128, 1 + samples.size // 512)
    if log == "none":
        np.testing.assert_allclose(got.logmel, ref, rtol=1e-4, atol=1e-4 * 1e-3 * ref.max())
    else:
        np.testing.assert_allclose(got.logmel, np.log(ref + cfg.features.log_offset), atol=1e-4)


def test_chunk_puts_every_row_in_shard_or_quarantine(mixed_manifest, tmp_path):
    path, expected, n = mixed_manifest
    cfg = load_config(None, ["preprocess.denoise=noisereduce-stationary"])
    manifest = read_manifest(str(path))
    res = process_chunk(manifest, cfg)
    assert res.shard.schema == SHARD_SCHEMA and res.quarantine.schema == QUARANTINE_SCHEMA
    assert res.shard.num_rows + res.quarantine.num_rows == n
    got = {u: f"{s}/{e.split(':')[0]}" for u, s, e in zip(*(res.quarantine.column(c).to_pylist()
                                                              for c in ("utt_id", "stage", "error")))}
    assert got == expected
    assert res.stats["rows_in"] == n and res.stats["rows_quarantined"] == len(expected)
    assert sum(res.stats["quarantined_by_reason"].values()) == len(expected)
    assert res.stats["files_opened"] == len(set(manifest.column("media_uri").to_pylist()))
    # shard rows: logmel is (n_mels, n_frames) row-major, waveform the gained 16 kHz PCM
    for row in res.shard.to_pylist():
        assert len(row["logmel"]) == row["n_mels"] * row["n_frames"] == 128 * (1 + len(row["waveform"]) // 512)
        assert row["sample_rate"] == 16000 and row["label4"] in (0, 1, 2, 3)
    assert abs(res.stats["output_audio_s"] - sum(len(w) for w in res.shard.column("waveform").to_pylist()) / 16000) < 1e-6
    # a plain pyarrow round trip keeps everything
    pq.write_table(res.shard, tmp_path / "s.parquet", compression="zstd")
    assert pq.read_table(tmp_path / "s.parquet").equals(res.shard)


def test_clipping_is_counted_in_rows_and_stats(media_set, tmp_path):
    import media

    rows, _ = media.manifest_rows(media_set)
    rows = [r for r in rows if r["utt_id"].endswith("wav16k")][:2]
    path = media.write_manifest(tmp_path / "m.parquet", rows)
    cfg = load_config(None, ["preprocess.denoise=none", "preprocess.gain=8"])
    res = process_chunk(read_manifest(str(path)), cfg)
    per_row = res.shard.column("clipped_samples").to_pylist()
    assert sum(per_row) == res.stats["clipped_samples"] > 0
    assert max(max(abs(v) for v in w) for w in res.shard.column("waveform").to_pylist()) <= 32768


def test_merge_stats_adds_numbers_and_dicts():
    merged = merge_stats([{"rows_in": 2, "by": {"a": 1}, "cpu_s": {"total": 1.5}},
                          {"rows_in": 3, "by": {"a": 2, "b": 1}, "cpu_s": {"total": 0.5}}])
    assert merged == {"rows_in": 5, "by": {"a": 3, "b": 1}, "cpu_s": {"total": 2.0}}


def test_hostile_segments_are_quarantined_or_processed_never_lost(media_set, tmp_path, caplog):
    """A 3-hour segment, a whole-file row longer than preprocess.max_segment_s, a 32-channel
    384 kHz file: each row ends in the shard or in quarantine with a reason, logged per row."""
    import logging

    import media

    wide = media.write_audio(tmp_path / "wide.wav", media.speechlike(1.0, 384000, 2, channels=32), 384000,
                             codec="pcm_s16le", layout="32 channels")
    base = {"corpus": "synthetic", "speaker": "s1", "gender": "F", "age": None, "session": None, "label": "angry",
            "label4": 0, "split": "train", "text": None}
    rows = [
        dict(base, utt_id="three_hours", media_uri=str(media_set["wav16k"]), start_s=0.0, end_s=3 * 3600.0),
        dict(base, utt_id="whole_long", media_uri=str(media_set["flac22k"]), start_s=None, end_s=None),  # 6 s
        dict(base, utt_id="wide_whole", media_uri=str(wide), start_s=None, end_s=None),
        dict(base, utt_id="wide_span", media_uri=str(wide), start_s=0.2, end_s=0.7),
    ]
    path = media.write_manifest(tmp_path / "m.parquet", rows)
    cfg = load_config(None, ["preprocess.denoise=none", "preprocess.max_segment_s=4"])
    with caplog.at_level(logging.INFO, logger="lssed.preprocess.chain"):
        res = process_chunk(read_manifest(str(path)), cfg)
    assert res.shard.num_rows + res.quarantine.num_rows == len(rows)
    reasons = {u: f"{s}/{e.split(':')[0]}" for u, s, e in zip(*(res.quarantine.column(c).to_pylist()
                                                               for c in ("utt_id", "stage", "error")))}
    assert reasons == {"three_hours": "decode/segment_too_long", "whole_long": "decode/segment_too_long"}
    assert sorted(res.shard.column("utt_id").to_pylist()) == ["wide_span", "wide_whole"]
    lengths = dict(zip(res.shard.column("utt_id").to_pylist(), (len(w) for w in res.shard.column("waveform").to_pylist())))
    assert lengths == {"wide_whole": 16000, "wide_span": 8000}
    # one WARNING line per quarantined row naming it and its reason; an INFO summary
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("three_hours" in w and "segment_too_long" in w for w in warnings)
    assert any("2 of 4 rows quarantined" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
