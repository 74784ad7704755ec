"""Great Expectations (GX Core 1.x) checks on the prepared splits, before anything trains on them.

Modules, one job each:

- :mod:`~aim.validation.batches`: read a split's parquet file with pyarrow, chunk by chunk, as
  pandas frames GX can check (multi-hot lists reduced to one id per row).
- :mod:`~aim.validation.suite`: the expectation suite of a split, derived from ``meta.json`` and
  the ``validation.*`` bounds.
- :mod:`~aim.validation.context`: the GX file context, pandas data source, assets, validation
  definitions and checkpoints (with an ``UpdateDataDocsAction``) writing HTML data docs.
- :mod:`~aim.validation.outcomes`: plain records of expectation results, merged across chunks.
- :mod:`~aim.validation.runner`: validate one split with all of the above.
- :mod:`~aim.validation.quarantine`: copy failing splits aside with the reasons.

Nothing is imported here, so importing the package stays cheap; it only switches GX telemetry
off and quiets GX's INFO logging (before any module of the package imports ``great_expectations``).
"""

import logging
import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs its import and every data source save at INFO; keep the stage's own log readable.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
