"""lssed: a distributed, reproducible speech-emotion-recognition benchmark on Ray."""

__version__ = "0.1.0"
