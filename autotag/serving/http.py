"""A run's tagger over HTTP: `autotag serve` (FastAPI on uvicorn).

Other tools call the model the way the dashboard's Tag page does: an upload is decoded in
the sandbox (`autotag.audio.sandbox`: a child process with memory, CPU and time limits)
under the dashboard's limits, the tagger runs one forward pass at a time (its own lock),
and the answer holds the same numbers as `autotag tag` (`serving.render`).

Every error is a JSON object `{"error": "one line"}` with a 4xx status; a fault of the
server's own is a 500 with the same shape and no traceback (the traceback goes to the
server's log). Bodies over `MAX_UPLOAD_MB` are refused while they arrive, not after.
Bound to loopback by default; bound elsewhere it needs a bearer token (`serve` refuses to
start without one).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from autotag.audio.decode import LIMITS, AudioError
from autotag.audio.sandbox import DecodeLimits, decode_untrusted, prestart
from autotag.serving.decide import decision_thresholds, tags_above, tuned_thresholds
from autotag.serving.render import predictions_to_dict
from autotag.serving.tagger import Tagger
from autotag.text import one_line

#: The largest upload, as the dashboard's (`.streamlit/config.toml` server.maxUploadSize).
MAX_UPLOAD_MB = 100
#: Uploads decoded at once: each decoder is a process of its own; more only queue for the CPU.
DECODERS = 4
#: Characters of an uploaded file's name quoted back (it is the client's text, any length).
NAME_CHARS = 120

#: What a 401 answer says the client should send.
BEARER = {"WWW-Authenticate": "Bearer"}

log = logging.getLogger("autotag.serving.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _TooLarge(Exception):
    """The body went past the limit while it arrived."""


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` gets 413 at its declared length, or as soon
    as the bytes received pass the limit (a chunked upload declares none)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _error(413 if declared.isdigit() else 400, self._message(declared), send)
            return
        received, too_large, answered = 0, False, False

        async def counted() -> Message:
            nonlocal received, too_large
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                too_large = True
                raise _TooLarge  # whoever reads the body fails (FastAPI's form parser: a 400 of its own)
            return message

        async def answer(message: Message) -> None:
            nonlocal answered
            if too_large:  # the app's answer to the broken read becomes the 413 it is
                if not answered:
                    answered = True
                    await _error(413, self._message(None), send)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except _TooLarge:
            pass
        if too_large and not answered:
            await _error(413, self._message(None), send)

    def _message(self, declared: bytes | None) -> str:
        if declared is not None and not declared.isdigit():
            return "Content-Length is not a number"
        return f"the upload is larger than {self.max_bytes / 1e6:.0f} MB; refused"


async def _error(status: int, message: str, send: Send) -> None:
    await JSONResponse({"error": message}, status_code=status)({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def create_app(
    run_dir: Path,
    token: str | None = None,
    max_upload_mb: float = MAX_UPLOAD_MB,
    limits: DecodeLimits | None = None,
) -> FastAPI:
    """The API of `run_dir`'s best checkpoint; `token`, when given, is required as a bearer token.

    Raises:
        RunError: the run has no checkpoint that loads (as `Tagger.load`).
    """
    tagger = Tagger.load(run_dir)
    tuned = tuned_thresholds(run_dir)
    decoding = threading.BoundedSemaphore(DECODERS)
    limits = limits or DecodeLimits()
    prestart(limits)  # the first upload finds a decoder waiting
    app = FastAPI(
        title="autotag",
        summary=f"Music tags from the run {run_dir.name}",
        description="Upload a clip to `/v1/tag`; `/v1/model` says what the model tags and what audio it takes.",
    )
    app.add_middleware(BodyLimit, max_bytes=int(max_upload_mb * 1e6))
    _errors_as_json(app)

    def authorized(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "a bearer token is required (Authorization: Bearer ...)", BEARER)

    @app.get("/health", summary="Whether the server is up (no token needed)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model", dependencies=[Depends(authorized)], summary="What the model tags, and what audio it takes")
    def model() -> dict[str, Any]:
        return {
            "run": run_dir.name,
            "checkpoint": tagger.checkpoint.name,
            "labels": tagger.labels,
            "thresholds": decision_thresholds(tagger.labels, tuned),
            "thresholds_tuned": tuned is not None,
            "input": {
                "sample_rate": tagger.sample_rate,
                "chunk_seconds": tagger.chunk_samples / tagger.sample_rate,
                "formats": ["wav", "flac", "ogg", "mp3"],
                "max_upload_mb": max_upload_mb,
                "max_channels": LIMITS.max_channels,
                "sample_rates": [LIMITS.min_rate, LIMITS.max_rate],
                "max_seconds": LIMITS.max_seconds,
            },
        }

    @app.post("/v1/tag", dependencies=[Depends(authorized)], summary="Tag one clip")
    def tag(
        file: Annotated[UploadFile, File(description="the audio: WAV, FLAC, OGG or MP3")],
        top_k: Annotated[int, Form(ge=1, le=1000, description="how many of the most probable tags to list")] = 10,
        threshold: Annotated[
            float | None, Form(ge=0.0, le=1.0, description="one cut-off for every tag (default: the run's tuned ones)")
        ] = None,
        taggram: Annotated[bool, Form(description="also each chunk's scores over time")] = False,
    ) -> dict[str, Any]:
        name = one_line(file.filename or "upload")[:NAME_CHARS]
        with decoding:
            try:
                wave = decode_untrusted(file.file.read(), tagger.sample_rate, name=name, limits=limits)
            except AudioError as exc:
                raise HTTPException(422, str(exc)) from None
        prediction = tagger.predict(wave)
        cuts = decision_thresholds(tagger.labels, tuned, threshold)
        scores = predictions_to_dict({name: prediction}, taggram)[name]
        return {
            "file": name,
            "duration": round(prediction.duration, 3),
            "silent": prediction.silent,
            "tags": tags_above(prediction, cuts),
            "top": [{"tag": t, "probability": round(p, 6)} for t, p in prediction.top(top_k)],
            "probabilities": scores["tags"] if taggram else scores,
            "thresholds": cuts,
            **({"taggram": scores["taggram"]} if taggram else {}),
        }

    return app


def _errors_as_json(app: FastAPI) -> None:
    """Every error as `{"error": "one line"}`: a client reads one field, whatever went wrong."""

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own and those Starlette raises (a broken body)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        message = one_line(f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))
        return JSONResponse({"error": message[:500]}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("serving %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"the server failed ({type(exc).__name__}); its log says more"}, status_code=500)
