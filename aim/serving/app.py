"""The HTTP app: ``POST /score``, ``GET /health``, ``GET /version``, ``POST /flush``.

:func:`create_app` loads both arms' models and opens the feature source before it returns, so a
service that cannot score refuses to start (``ModelError`` / ``DataError`` / ``ConfigError``
saying what to run). The impression writer starts with the app's lifespan and flushes at shutdown.

Every ``/score`` answer carries a ``Server-Timing`` header (milliseconds): ``lookup`` (online
feature lookups), ``model`` (the forward pass) and ``total`` (the whole scoring call: checks, arm,
lookups, input assembly, model, impression buffering; HTTP parsing and JSON encoding excluded), so
the share of server time spent in the online lookup is measurable from outside.

Status codes: 200; 400 for requests the schema cannot reject (too many or repeated candidates,
context fields that are not event-level); 422 for schema errors (pydantic's message); 503 when the
online store does not answer. Unknown users and items are not errors: they score with OOV ids.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import torch
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from aim import __version__
from aim.config import Params
from aim.nn import kernels
from aim.serving.arms import Arm, assign_arm
from aim.serving.features import FeatureBuilder, InvalidRequest, LookupFailed, feature_builder, open_source
from aim.serving.impressions import ImpressionLog
from aim.serving.models import ArmModel, load_arms

log = logging.getLogger(__name__)


class ScoreRequest(BaseModel):
    """One user and the candidate items to score for them."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, description="raw user key (unknown users score with OOV embeddings)")
    item_ids: list[str] = Field(min_length=1, description="candidate item keys, unique, at most serve.max_candidates")
    context: dict[str, str] | None = Field(None, description="event-level field -> raw token")
    request_id: str | None = Field(None, min_length=1, max_length=200, description="default: a new uuid4 hex")


class ItemScore(BaseModel):
    """One candidate's click probability."""

    item_id: str
    score: float


class ScoreResponse(BaseModel):
    """Scores in request order, with the arm and the model that produced them."""

    request_id: str
    arm: Arm
    model_name: str
    model_version: str
    scores: list[ItemScore]


class Scorer:
    """Everything ``/score`` needs: arms, features, impression log (built once per app)."""

    def __init__(self, params: Params, lookup: str | None = None):
        self.params = params
        self.arms: dict[Arm, ArmModel] = load_arms(params)
        self.lookup = lookup or params.serve.lookup
        self.source = open_source(params, self.lookup)
        self.builder: FeatureBuilder = feature_builder(params, self.source.manifest)
        self.impressions = ImpressionLog(params.path(params.serve.impressions), params.serve.flush_rows)

    def check(self, request: ScoreRequest) -> None:
        """400s the schema cannot express: too many or duplicate candidates."""
        limit = self.params.serve.max_candidates
        if len(request.item_ids) > limit:
            raise InvalidRequest(
                f"{len(request.item_ids)} item_ids sent, at most serve.max_candidates = {limit} are scored per request"
            )
        if len(set(request.item_ids)) != len(request.item_ids):
            seen, dup = set(), []
            for item in request.item_ids:
                if item in seen and item not in dup:
                    dup.append(item)
                seen.add(item)
            raise InvalidRequest(f"item_ids must be unique; repeated: {dup[:5]}")

    def score(self, request: ScoreRequest) -> tuple[dict, dict[str, float]]:
        """The response body and the timings (ms) of one request."""
        started = time.perf_counter()
        self.check(request)
        arm = assign_arm(request.user_id, self.params.serve.salt, self.params.serve.treatment_share)
        chosen = self.arms[arm]
        inputs, lookup = self.builder.build(self.source, request.user_id, request.item_ids, request.context)
        model_start = time.perf_counter()
        with torch.inference_mode():
            scores = torch.sigmoid(chosen.model(inputs.ids, inputs.multi_hot)).float().numpy()
        model_seconds = time.perf_counter() - model_start
        request_id = request.request_id or uuid.uuid4().hex
        self.impressions.add(
            request_id,
            request.user_id,
            request.item_ids,
            arm,
            chosen.name,
            chosen.version,
            scores,
            served_at=datetime.now(UTC),
        )
        body = {
            "request_id": request_id,
            "arm": arm,
            "model_name": chosen.name,
            "model_version": chosen.version,
            "scores": [{"item_id": i, "score": s} for i, s in zip(request.item_ids, scores.tolist(), strict=True)],
        }
        total = time.perf_counter() - started
        return body, {"lookup": 1000 * lookup, "model": 1000 * model_seconds, "total": 1000 * total}


def server_timing(timings: dict[str, float]) -> str:
    """``lookup;dur=1.234, model;dur=0.456, total;dur=2.345`` (milliseconds)."""
    return ", ".join(f"{name};dur={ms:.3f}" for name, ms in timings.items())


def create_app(params: Params, *, lookup: str | None = None) -> FastAPI:
    """The scoring app for ``params``; ``lookup`` (``feast`` | ``memory``) overrides ``serve.lookup``.

    Raises ModelError (registry empty, model missing, corrupt or trained on other vocabularies),
    DataError or ConfigError (feature store missing, bad serve settings) instead of starting.
    """
    kernels.configure(params.compute.cpu_kernels)
    kernels.cpu_kernels()  # built or loaded now, not inside the first request
    scorer = Scorer(params, lookup)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scorer.impressions.start()
        try:
            yield
        finally:
            written = scorer.impressions.close()
            log.info("shutdown: flushed %d impressions to %s", written, scorer.impressions.path)

    app = FastAPI(title="aim-ctr scoring service", version=__version__, lifespan=lifespan)
    app.state.scorer = scorer

    @app.exception_handler(InvalidRequest)
    async def _invalid(_, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(LookupFailed)
    async def _lookup_failed(_, exc: LookupFailed) -> JSONResponse:
        log.error("%s", exc)
        return JSONResponse(status_code=503, content={"detail": f"{exc}; check the online store (GET /health)"})

    @app.post("/score", response_model=ScoreResponse)
    def score(request: ScoreRequest) -> JSONResponse:
        """Score ``item_ids`` for ``user_id`` with the model of the user's arm; log the impressions."""
        body, timings = scorer.score(request)
        # the body is built to ScoreResponse's shape: returned as is (no second validation pass)
        return JSONResponse(body, headers={"Server-Timing": server_timing(timings)})

    @app.get("/health")
    def health() -> JSONResponse:
        """200 when both models are loaded and the online store answers, 503 otherwise."""
        models = {arm: f"{m.name} {m.version}" for arm, m in scorer.arms.items()}
        try:
            scorer.source.ping()
            store, error = True, None
        except Exception as exc:  # whatever the store raises, report it
            store, error = False, f"{type(exc).__name__}: {exc}"
        ok = store and len(models) == 2
        body = {
            "status": "ok" if ok else "unavailable",
            "models": models,
            "online_store": store,
            "lookup": scorer.lookup,
            "impressions_buffered": scorer.impressions.buffered,
        }
        if error:
            body["error"] = error
        return JSONResponse(status_code=200 if ok else 503, content=body)

    @app.get("/version")
    def version() -> dict:
        """Package version, both arms' model name/version/data version, the treatment share."""
        return {
            "package": __version__,
            "arms": {arm: m.describe() for arm, m in scorer.arms.items()},
            "treatment_share": params.serve.treatment_share,
            "salt": params.serve.salt,
        }

    @app.post("/flush")
    def flush() -> dict:
        """Write the buffered impressions now (admin); returns the rows written."""
        return {"flushed": scorer.impressions.flush(), "path": str(scorer.impressions.path)}

    return app
