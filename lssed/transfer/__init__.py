"""Transfer to depression detection (the paper's Table 6): participant-level classifiers on
utterance embeddings, and the baselines they are compared with.

- :mod:`lssed.transfer.pooling` — utterance embeddings -> one feature vector per participant
  (mean and std pooling, plus the number of utterances);
- :mod:`lssed.transfer.classifiers` — scikit-learn logistic regression and linear SVM (PHQ-8
  binary) and ridge regression (PHQ-8 score), hyperparameters chosen by participant-grouped
  cross-validation on the training participants only, scored on dev with seeded bootstrap
  95% intervals over participants;
- :mod:`lssed.transfer.baselines` — embedding tables from the shards' waveforms: MFCC +
  prosody functionals (torchaudio), a torchaudio wav2vec2 ASR encoder, eGeMAPS (openSMILE,
  optional);
- :mod:`lssed.transfer.stage` — ``run_transfer``: all of it for one feature set, written to
  ``<out>/transfer/<name>/results.json`` (the report's Table 6);
- :mod:`lssed.transfer.cli` — ``lssed transfer``.

See docs/transfer.md.
"""
