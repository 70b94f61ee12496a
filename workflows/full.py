"""The whole lssed benchmark from one config: corpus -> preprocess -> train -> tune -> report.

  python workflows/full.py                                   # the embedded demo, local Ray
  python workflows/full.py --config workflows/configs/lssed.yaml   # paper scale (S3, GPUs)
  ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- \\
      python workflows/full.py --config workflows/configs/lssed.yaml

Composition only: the work lives in lssed.workflow.run_workflow. Committed stages are
skipped, so re-submitting after a failure resumes; the exit status is non-zero on failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# `ray job submit --working-dir .` ships the checkout without installing it.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from lssed.config import ConfigError  # noqa: E402
from lssed.logs import configure_logging  # noqa: E402
from lssed.storage import StorageError  # noqa: E402
from lssed.workflow import add_arguments, config_from_cli, format_summary, run_workflow  # noqa: E402

log = logging.getLogger("lssed.workflows.full")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        cfg = config_from_cli(args)
        result = run_workflow(cfg)
    except (ConfigError, StorageError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception:  # noqa: BLE001 - any other failure: show it and exit non-zero
        log.exception("workflow failed")
        return 1
    print(format_summary(result), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
