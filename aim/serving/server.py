"""``aim serve``: the scoring app under uvicorn on ``serve.host:serve.port``."""

from __future__ import annotations

import logging
import socket

import torch

from aim.config import Params

log = logging.getLogger(__name__)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for a service started on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_server(params: Params) -> None:
    """Build the app (refusing to start when a model or the feature store is unusable) and serve it.

    Blocks until interrupted; impressions are flushed on shutdown. uvicorn's log lines go through
    the same logging set-up as every ``aim`` command (``uvicorn.access`` one line per request).
    """
    import uvicorn

    from aim.serving.app import create_app

    cfg = params.serve
    torch.set_num_threads(cfg.threads)  # one request's batch is small: more threads only add overhead
    app = create_app(params)
    scorer = app.state.scorer
    arms = ", ".join(f"{arm} {m.name} {m.version}" for arm, m in scorer.arms.items())
    log.info(
        "serving on http://%s:%d (%s; treatment share %.0f%%; features: %s; impressions -> %s)",
        cfg.host,
        cfg.port,
        arms,
        100 * cfg.treatment_share,
        scorer.lookup,
        scorer.impressions.path,
    )
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_config=None, workers=1, access_log=True)
