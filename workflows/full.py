"""The whole lssed benchmark from one config: corpus -> preprocess -> train -> tune -> report.

  python workflows/full.py                                   # the embedded demo, local Ray
  python workflows/full.py --config workflows/configs/lssed.yaml   # paper scale (S3, GPUs)
  ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- \\
      python workflows/full.py --config workflows/configs/lssed.yaml

Exactly `lssed run ARGS...` (same options, logging and exit status): the work lives in
lssed.workflow. Committed stages are skipped, so re-submitting after a failure resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `ray job submit --working-dir .` ships the checkout without installing it.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lssed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
