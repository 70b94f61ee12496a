"""Sweeps on Ray Tune: architectures x STFT windows x optimiser settings, ASHA, validation-UA selection."""
