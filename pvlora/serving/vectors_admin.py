"""Vectors swapped in and out of a running ``pvlora serve``: ``POST /v1/vectors``, ``DELETE
/v1/vectors/{name}`` and ``GET /v1/vectors`` (the set is also each model's ``preference_weights`` in
``GET /v1/models``).

Off unless the server was started with ``--allow-vector-swap`` (a 403 naming the flag), and a vector
is read only from the directories given by ``--vector-dir`` (symlinks resolved first) or downloaded only
from the Hub organisations given by ``--vector-org``. A vector goes through every check
:func:`pvlora.load_composed` makes (:func:`pvlora.steering.swap.check_vector`); a bad or hostile one is a
4xx naming the field and the server keeps serving.

Consistency: the files are read and checked while batches run; the model changes only under the
batcher's lock, between batches (:class:`pvlora.serving.batcher.Batcher`), so every batch runs with
one set of vectors. A request accepted before a vector was added gives it η = 0: the old set's
answer. A removal first takes the name out of the server's mix (new requests naming it get a 400),
then waits until the accepted requests that give it η ≠ 0 are answered, then removes it.
"""

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from pvlora.core.errors import PvloraError, RequestError
from pvlora.core.eta import check_eta
from pvlora.core.names import NAME_RE

logger = logging.getLogger(__name__)
DRAIN_S = 300.0  # the longest a removal waits for the accepted requests that use the vector
FLAG = "--allow-vector-swap"


class Refused(PvloraError):
    """Not allowed by the server's settings: a 403 naming the field."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def allowed_path(raw: str, dirs: tuple[str, ...]) -> Path:
    """``raw`` resolved (symlinks followed), if it lies in one of ``dirs``."""
    if not dirs:
        raise Refused("loading vectors from a path is off on this server (its vector_dirs setting is empty)", "path")
    try:
        path = Path(raw).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop, a name too long
        raise RequestError(f"path {raw!r:.200} is not a usable path ({exc})", "path") from None
    for d in dirs:
        root = Path(d).resolve()
        if path == root or path.is_relative_to(root):
            return path
    raise Refused(f"path {raw!r:.200} is outside the directories this server loads vectors from (vector_dirs)",
                  "path")


def allowed_hub_id(raw: str, orgs: tuple[str, ...]) -> str:
    """``raw`` (``ORG/NAME[@REVISION]``), if ORG is one of ``orgs`` and it names no local path."""
    if not orgs:
        raise Refused("downloading vectors from the Hub is off on this server (its vector_orgs setting is empty)",
                      "hub_id")
    from pvlora.artifacts.locate import REPO_RE  # here: keeps the server's import chain short

    m = REPO_RE.match(raw)
    if not m:
        raise RequestError(f"hub_id {raw!r:.200} is not ORG/NAME or ORG/NAME@REVISION", "hub_id")
    org = m["repo"].split("/", 1)[0]
    if org.lower() not in {o.lower() for o in orgs}:
        raise Refused(f"hub_id {raw!r:.200}: organisation {org!r} is not one this server downloads from "
                      "(vector_orgs)", "hub_id")
    if Path(raw).exists() or Path(m["repo"]).exists() or Path(org).exists():  # read as a local path first
        raise RequestError(f"hub_id {raw!r:.200} also names a local path on the server; refused", "hub_id")
    return raw


def add_vector_routes(app, batcher, default: dict[str, float], settings) -> None:
    """Register the vector endpoints on ``app``; ``default`` is the server's mix ({name: η}), which the
    chat handler and ``GET /v1/models`` read, changed here in place (on the event loop's thread)."""
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict

    allowed = bool(getattr(settings, "allow_vector_swap", False))
    model, swap_lock = batcher.model, threading.Lock()  # one swap at a time

    class VectorLoad(BaseModel):
        # a misspelled field is a 400 naming it, not ignored; strict: a string is a string, not a number
        model_config = ConfigDict(extra="forbid", strict=True)
        path: str | None = None
        hub_id: str | None = None
        name: str | None = None
        eta: Any = 0.0

    def error(status: int, message: str, field: str | None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": field,
                                       "code": None}}, status_code=status)

    def refused_if_off() -> JSONResponse | None:
        if allowed:
            return None
        return error(403, f"swapping vectors is off on this server; start it with {FLAG}", "allow_vector_swap")

    def add(spec: str, name: str | None, eta: float) -> str:
        from pvlora.steering.swap import attach, check_vector

        with swap_lock:
            vec = check_vector(model, spec, name)  # files read and checked while batches run
            with batcher.lock:  # between batches
                return attach(model, vec, eta)

    def remove(name: str) -> None:
        from pvlora.steering.swap import remove_vector

        with swap_lock:
            deadline = time.monotonic() + DRAIN_S
            while True:
                with batcher.lock:
                    if batcher.pending[name] <= 0 or time.monotonic() > deadline:
                        remove_vector(model, name)
                        return
                time.sleep(0.005)

    @app.get("/v1/vectors")
    async def list_vectors():
        return {"object": "list", "swap_allowed": allowed,
                "data": [{"object": "vector", "name": n, "eta": eta} for n, eta in default.items()]}

    @app.post("/v1/vectors")
    async def load_vector(req: VectorLoad):
        if (off := refused_if_off()) is not None:
            return off
        if (req.path is None) == (req.hub_id is None):
            raise RequestError("give exactly one of path or hub_id", "path" if req.path is None else "hub_id")
        field = "path" if req.path is not None else "hub_id"
        if req.name is not None and not NAME_RE.fullmatch(req.name):
            raise RequestError(f"name {req.name!r:.80} is not valid; use 1-64 letters, digits, '_' or '-', starting "
                               "with a letter or digit", "name")
        if isinstance(req.eta, bool) or not isinstance(req.eta, (int, float)):  # JSON: "2" or true is no weight
            raise RequestError(f"eta must be a number (a JSON number, not a string or a boolean), got {req.eta!r:.60}",
                               "eta")
        eta = check_eta(req.name or "the vector", req.eta, "eta")
        try:
            spec = str(allowed_path(req.path, settings.vector_dirs) if req.path is not None
                       else allowed_hub_id(req.hub_id, settings.vector_orgs))
        except Refused as exc:
            return error(403, str(exc), exc.field)
        from pvlora.steering.swap import NameTaken

        try:
            name = await asyncio.to_thread(add, spec, req.name, eta)
        except NameTaken as exc:
            return error(409, str(exc), "name")
        except RequestError as exc:
            return error(400, str(exc), exc.field or field)
        except PvloraError as exc:  # a missing, altered, hostile or incompatible vector
            return error(400, str(exc), field)
        except Exception as exc:  # noqa: BLE001 — whatever a hostile file provokes, the server keeps serving
            logger.exception("loading a vector failed")
            return error(400, f"{field}: the vector could not be loaded ({type(exc).__name__}: {exc})", field)
        default[name] = eta  # after the model has it: a request meanwhile gives it η = 0, the old set
        logger.info(f"[pvlora] vector {name!r} loaded from {spec} at η {eta:g}")
        return {"object": "vector", "name": name, "eta": eta, "preference_weights": dict(default)}

    @app.delete("/v1/vectors/{name}")
    async def unload_vector(name: str):
        if (off := refused_if_off()) is not None:
            return off
        if name not in default:
            return error(404, f"no vector named {name!r:.80} is loaded; loaded: {', '.join(default)}", "name")
        if len(default) == 1:
            return error(409, f"{name!r} is this server's only vector; load another before removing it", "name")
        eta = default.pop(name)  # new requests naming it now get a 400
        await asyncio.sleep(0.05)  # requests accepted just before (a stream not yet queued) reach the queue
        try:
            await asyncio.to_thread(remove, name)
        except Exception as exc:  # noqa: BLE001 — never expected; the vector stays, and says so
            default[name] = eta
            logger.exception("removing a vector failed")
            return error(500, f"removing {name!r} failed: {exc}", "name")
        logger.info(f"[pvlora] vector {name!r} removed")
        return {"object": "vector", "name": name, "deleted": True, "preference_weights": dict(default)}


__all__ = ["add_vector_routes", "allowed_hub_id", "allowed_path"]
