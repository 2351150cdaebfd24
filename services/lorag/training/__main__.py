"""``python -m lorag.training JOB_ID``: run one queued training job in this process."""

from __future__ import annotations

import sys

from lorag.cli.train import run_job

if __name__ == "__main__":
    sys.exit(run_job.main(args=sys.argv[1:], prog_name="python -m lorag.training"))
