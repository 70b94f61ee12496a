"""`lssed predict`: emotion timelines of new media with a trained model (docs/predict.md).

Pure pieces: :mod:`.vad` (speech regions of decoded audio), :mod:`.segments` (regions ->
model windows, given-segment CSVs) and :mod:`.timeline` (tables, summary, plots, outputs).
The Ray Data pipeline and the command line put them together.
"""
