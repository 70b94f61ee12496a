"""noisereduce's non-stationary spectral gate, computed only where it changes the output.

``noisereduce.reduce_noise(y, sr)`` with its defaults (non-stationary, ``n_fft=1024``, hop
256, ``time_constant_s=2``, mask smoothing 500 Hz x 50 ms, ``thresh_n_mult_nonstationary=2``,
``sigmoid_slope_nonstationary=10``, ``prop_decrease=1``, chunks of 600,000 samples padded with
30,000 zeros on each side) does, per chunk, in float64:

1. ``scipy.signal.stft`` (periodic Hann 1024, hop 256, zero boundary, "spectrum" scaling);
2. a per-band noise floor: ``filtfilt`` of the magnitudes along time with a one-pole low-pass
   whose coefficient comes from the 2-s time constant (no edge padding);
3. a sigmoid mask of how far each bin rises above its floor, smoothed by a 33 x 7 triangular
   kernel (``fftconvolve``, "same");
4. the masked STFT back through ``scipy.signal.istft`` (overlap-add, window-power normalised).

For a clip of a few seconds most of that work is spent on the 60,000 padding zeros (a 4-s clip
is processed as 7.75 s) and on scipy's general-purpose STFT loops. :func:`reduce_noise` computes
the same numbers with less work, and every shortcut is exact, not an approximation:

- frames that hold only zeros have a zero spectrum, so their FFTs are skipped (their
  magnitudes are still fed to the filter, which is cheap and IIR, so it must see them);
- the mask is computed only for frames within the smoothing kernel's reach (3 frames) of the
  frames that overlap the kept output samples, and the inverse STFT only for those frames;
- the separable triangular kernel is applied as two 1-D convolutions (it is the outer
  product of two triangles), the overlap-add is four vectorised block sums.

The results equal the library's to float64 rounding (tests/preprocess/test_spectralgate.py
compares them on real decoded speech, clip lengths around the chunk size and with the
library's own chunking); the output is cast to float32 as the library casts to the input's
dtype. One deliberate difference: where a band's floor is exactly 0 (an all-zero chunk),
the library divides 0 by 0 and returns NaN samples; here the floor is bounded below by the
smallest normal float64, so digital silence stays silence.
"""

from __future__ import annotations

import functools

import numpy as np

N_FFT = 1024
HOP = N_FFT // 4
CHUNK = 600_000
PADDING = 30_000
TIME_CONSTANT_S = 2.0
FREQ_SMOOTH_HZ = 500.0
TIME_SMOOTH_MS = 50.0
THRESH_N_MULT = 2.0
SIGMOID_SLOPE = 10.0


def reduce_noise(y: np.ndarray, sr: int) -> np.ndarray:
    """``noisereduce.reduce_noise(y=y, sr=sr)`` (defaults, one channel) as float32, computed lean."""
    x = np.asarray(y)
    if x.ndim != 1:
        raise ValueError(f"reduce_noise takes one channel (a 1-D waveform), got shape {x.shape}")
    n = x.shape[0]
    out = np.zeros(n, dtype=np.float32)
    if n == 0:
        return out
    plan = _plan(sr)
    # The library's chunking: one padded chunk for short clips, chunks of CHUNK samples each
    # padded with PADDING samples of its neighbours (zeros outside the clip) for long ones
    # (the last chunk too is CHUNK wide, zeros past the clip's end).
    span = n if n <= CHUNK else CHUNK
    for start in range(0, n, span):
        stop = min(start + span, n)
        lo, hi = start - PADDING, start + span + PADDING
        chunk = np.zeros(hi - lo, dtype=np.float64)
        chunk[max(lo, 0) - lo: min(hi, n) - lo] = x[max(lo, 0): min(hi, n)]
        out[start:stop] = _gate_chunk(chunk, start - lo, stop - lo, plan)
    return out


class _Plan:
    """Everything that depends on the sample rate only."""

    def __init__(self, sr: int) -> None:
        self.window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
        self.window_sum = float(self.window.sum())
        t_frames = TIME_CONSTANT_S * sr / float(HOP)
        self.b = (np.sqrt(1.0 + 4.0 * t_frames ** 2) - 1.0) / (2.0 * t_frames ** 2)
        n_grad_freq = int(FREQ_SMOOTH_HZ / (sr / (N_FFT / 2)))
        n_grad_time = int(TIME_SMOOTH_MS / ((HOP / sr) * 1000))
        if n_grad_freq < 1 or n_grad_time < 1:
            raise ValueError(f"sample rate {sr} Hz is too low for noisereduce's default mask smoothing")
        self.freq_kernel = _triangle(n_grad_freq)
        self.time_kernel = _triangle(n_grad_time)
        # The library normalises the outer product by its sum = product of the two sums.
        self.freq_kernel /= self.freq_kernel.sum()
        self.time_kernel /= self.time_kernel.sum()
        self.reach = n_grad_time  # frames the time kernel reaches on each side


@functools.lru_cache(maxsize=8)
def _plan(sr: int) -> _Plan:
    return _Plan(sr)


def _triangle(n: int) -> np.ndarray:
    up = np.linspace(0, 1, n + 1, endpoint=False)
    down = np.linspace(1, 0, n + 2)
    return np.concatenate([up, down])[1:-1]


def _gate_chunk(chunk: np.ndarray, keep_start: int, keep_stop: int, plan: _Plan) -> np.ndarray:
    """The library's gate on one padded chunk, returned for samples [keep_start, keep_stop)."""
    length = chunk.shape[0]
    n_frames = length // HOP + 1  # scipy.signal.stft, boundary="zeros", padded=False
    # Frame k covers chunk samples [k*HOP - N_FFT/2, k*HOP + N_FFT/2).
    nonzero = np.flatnonzero(chunk)
    if nonzero.size == 0:
        return np.zeros(keep_stop - keep_start, dtype=np.float32)
    live_lo = max(_first_frame_after(int(nonzero[0])), 0)
    live_hi = min(_last_frame_before(int(nonzero[-1])), n_frames - 1)
    # Frames whose samples reach the kept output, and the mask frames the smoothing needs.
    out_lo = max(_first_frame_after(keep_start), 0)
    out_hi = min(_last_frame_before(keep_stop - 1), n_frames - 1)
    mask_lo = max(out_lo - plan.reach, 0)
    mask_hi = min(out_hi + plan.reach, n_frames - 1)

    spec_lo, spec_hi = min(live_lo, mask_lo), max(live_hi, mask_hi)
    spectrum = _stft(chunk, spec_lo, spec_hi, plan)  # (frames, bins), frames spec_lo..spec_hi
    # Magnitudes of frames spec_lo.. to the chunk's end (frames past spec_hi are zero). The
    # library's filter starts at frame 0 in state zi * |X[0]|; when frame 0 is silent that
    # state is 0 and stays 0 through the silent frames, so starting at spec_lo is exact.
    first = spec_lo if live_lo > 0 else 0
    magnitude = np.zeros((n_frames - first, N_FFT // 2 + 1), dtype=np.float64)
    magnitude[spec_lo - first: spec_hi + 1 - first] = np.abs(spectrum)
    floor = _filtfilt_one_pole(magnitude, plan.b)[mask_lo - first: mask_hi + 1 - first]
    floor = np.maximum(floor, np.finfo(np.float64).tiny)
    above = (magnitude[mask_lo - first: mask_hi + 1 - first] - floor) / floor
    mask = 1.0 / (1.0 + np.exp(-(above - THRESH_N_MULT) * SIGMOID_SLOPE))
    mask = _smooth(mask, plan)[out_lo - mask_lo: out_hi - mask_lo + 1]

    gated = spectrum[out_lo - spec_lo: out_hi - spec_lo + 1] * mask
    return _istft_samples(gated, out_lo, keep_start, keep_stop, n_frames, plan).astype(np.float32)


def _first_frame_after(sample: int) -> int:
    """First frame whose window reaches ``sample`` (frame k ends at k*HOP + N_FFT/2)."""
    return -((-(sample - N_FFT // 2 + 1)) // HOP)


def _last_frame_before(sample: int) -> int:
    """Last frame whose window reaches ``sample`` (frame k starts at k*HOP - N_FFT/2)."""
    return (sample + N_FFT // 2) // HOP


def _stft(chunk: np.ndarray, lo: int, hi: int, plan: _Plan) -> np.ndarray:
    """Frames lo..hi of scipy.signal.stft(chunk) ("spectrum" scaling), frames as rows."""
    import scipy.fft

    half = N_FFT // 2
    start = lo * HOP - half
    stop = hi * HOP + half
    padded = np.zeros(stop - start, dtype=np.float64)
    a, b = max(start, 0), min(stop, chunk.shape[0])
    padded[a - start: b - start] = chunk[a:b]
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    return scipy.fft.rfft(frames * plan.window, axis=-1) / plan.window_sum


def _filtfilt_one_pole(x: np.ndarray, b: float) -> np.ndarray:
    """scipy.signal.filtfilt([b], [1, b - 1], x, axis=0, padtype=None) (frames as rows)."""
    from scipy.signal import lfilter, lfilter_zi

    num, den = [b], [1.0, b - 1.0]
    zi = lfilter_zi(num, den)
    # Leading all-zero frames with the library's initial state zi * x[0] = 0 stay exactly 0.
    forward, _ = lfilter(num, den, x, axis=0, zi=zi * x[:1])
    backward, _ = lfilter(num, den, forward[::-1], axis=0, zi=zi * forward[-1:])
    return backward[::-1]


def _smooth(mask: np.ndarray, plan: _Plan) -> np.ndarray:
    """fftconvolve(mask, outer(freq, time), "same"), with frames as rows and bins as columns.

    Each normalised triangle of 2m - 1 taps is two box filters of m taps (running sums), with
    zeros outside the array like the library's "same" mode.
    """
    out = _triangle_filter(mask, plan.freq_kernel.shape[0], axis=1)
    return _triangle_filter(out, plan.time_kernel.shape[0], axis=0)


def _triangle_filter(x: np.ndarray, taps: int, axis: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    m = (taps + 1) // 2
    # The first box's output reaches m - 1 samples past each edge: keep them (zero-pad first).
    pad = [(0, 0)] * x.ndim
    pad[axis] = (m - 1, m - 1)
    padded = np.pad(x, pad)
    once = uniform_filter1d(padded, m, axis=axis, mode="constant", cval=0.0)
    # An even box is not centred: the second pass is shifted by one so the two together are.
    twice = uniform_filter1d(once, m, axis=axis, mode="constant", cval=0.0, origin=0 if m % 2 else -1)
    keep = [slice(None)] * x.ndim
    keep[axis] = slice(m - 1, m - 1 + x.shape[axis])
    return twice[tuple(keep)]


def _istft_samples(gated: np.ndarray, first_frame: int, keep_start: int, keep_stop: int,
                   n_frames: int, plan: _Plan) -> np.ndarray:
    """Samples [keep_start, keep_stop) of scipy.signal.istft of a spectrogram whose only
    non-zero frames are ``gated`` (frames first_frame.., rows), with the library's window-power
    normalisation computed over all n_frames frames."""
    import scipy.fft

    half = N_FFT // 2
    count = gated.shape[0]
    segments = scipy.fft.irfft(gated, n=N_FFT, axis=-1) * plan.window_sum * plan.window
    quarters = N_FFT // HOP
    # Frame k's quarter q covers block (k - half/HOP + q) of HOP samples.
    blocks = np.zeros((count + quarters - 1, HOP), dtype=np.float64)
    window_power = (plan.window ** 2).reshape(quarters, HOP)
    for q in range(quarters):
        blocks[q: q + count] += segments[:, q * HOP: (q + 1) * HOP]
    signal = blocks.reshape(-1)
    origin = first_frame * HOP - half  # chunk sample of signal[0]
    # The library's norm: window power summed over every frame of the chunk covering a
    # sample. Block j (chunk samples origin + j*HOP ..) gets quarter q of frame first_frame + j - q.
    frame = first_frame + np.arange(blocks.shape[0])[:, None] - np.arange(quarters)[None, :]
    covered = ((frame >= 0) & (frame < n_frames)).astype(np.float64)
    norm = (covered @ window_power).reshape(-1)
    out = signal[keep_start - origin: keep_stop - origin]
    n = norm[keep_start - origin: keep_stop - origin]
    return np.where(n > 1e-10, out / np.where(n > 1e-10, n, 1.0), out)
