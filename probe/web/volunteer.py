"""The volunteer's own page (local mode only) and its "Run now" button.

Why the button starts ``kuzot run`` as a child process rather than measuring in the
server: the run is then exactly the one the command line and the schedule make (consent,
byte caps, the run lock, signing, the writer), the Explorer keeps its read-only database
connection, and a run that fails takes nothing else down.

Why so many checks for one button: it is the only thing in the Explorer that changes
anything, and a web page on another site can make the volunteer's browser send a POST
to 127.0.0.1.  So: the route exists only in local mode; the form carries a token that
only this process's own pages contain (another site cannot read them: same-origin
policy); the Host header must name a loopback address (a DNS-rebinding page would send
its own name); an Origin header, when the browser sends one, must be this server's; and
consent must be on record, as for any run.
"""

from __future__ import annotations

import hmac
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import trio
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from probe.web.context import WebContext
from probe.web.pages import language, page, volunteer_data

#: Extra arguments for the button's ``kuzot run`` (shell words), e.g. a lab's resolver
#: and CA bundle; the volunteer's config.toml supplies everything else, as for any run.
RUN_ARGS_ENV = "KUZOT_WEB_RUN_ARGS"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_FORM_LIMIT = 4096


class RunLauncher:
    """At most one ``kuzot run`` child at a time, and what became of the last one."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.token = secrets.token_urlsafe(32)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self.started_at: datetime | None = None

    def argv(self) -> list[str]:
        extra = shlex.split(os.environ.get(RUN_ARGS_ENV, ""))
        return [sys.executable, "-m", "probe", "run", "--db", self.db_url, "--quiet", *extra]

    def start(self) -> bool:
        """Start a run; False when one is still going."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return False
            handle, name = tempfile.mkstemp(prefix="kuzot-web-run-", suffix=".log")
            with os.fdopen(handle, "wb") as log:
                # The run's own consent check sees no terminal and refuses rather than asks.
                self._proc = subprocess.Popen(
                    self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            if self._log is not None:
                self._log.unlink(missing_ok=True)
            self._log = Path(name)
            self.started_at = datetime.now(UTC)
            return True

    def state(self) -> dict[str, Any]:
        """``idle``, ``running`` or ``finished`` (with the exit status and the output's end)."""
        with self._lock:
            if self._proc is None:
                return {"state": "idle"}
            code = self._proc.poll()
            state: dict[str, Any] = {
                "started_at": self.started_at,
                "state": "running" if code is None else "finished",
            }
            if code is not None:
                state["returncode"] = code
                text = self._log.read_text(errors="replace") if self._log and self._log.exists() else ""
                state["output"] = text[-2000:]
            return state


def _host_is_loopback(request: Request) -> bool:
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in _LOOPBACK_HOSTS or name.startswith("127.")


def _same_origin(request: Request) -> bool:
    """The form was posted from one of this server's pages.  Browsers say so in
    ``Sec-Fetch-Site``; ``Origin`` is "null" under this site's no-referrer policy, so
    only an Origin naming another site is refused by it."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin in (None, "null") or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


async def _form_token(request: Request) -> str:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_LIMIT:
            raise HTTPException(413, "form too large")
    values = parse_qs(body.decode("utf-8", "replace"))
    return (values.get("csrf") or [""])[0]


def volunteer_page_data(ctx: WebContext, launcher: RunLauncher) -> dict[str, Any]:
    """The page's data (:func:`probe.web.pages.volunteer_data`) with the button's run."""
    return {**volunteer_data(ctx), "run_now": launcher.state(), "csrf": launcher.token}


def volunteer_routes(ctx: WebContext) -> list[Route]:
    """The page and its button, or nothing at all outside local mode."""
    if ctx.config.mode != "local":
        return []
    launcher = RunLauncher(ctx.source.url)

    async def show(request: Request) -> Response:
        language(request)
        data = await trio.to_thread.run_sync(volunteer_page_data, ctx, launcher)
        response = page(request, ctx, "volunteer.html", data=data)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def run_now(request: Request) -> Response:
        lang = language(request)
        if not _host_is_loopback(request) or not _same_origin(request):
            raise HTTPException(403, "runs are started only from this computer's own Explorer")
        if not hmac.compare_digest(await _form_token(request), launcher.token):
            raise HTTPException(403, "the form has expired: reload the page and try again")
        from probe.volunteer.consent import consent_record

        if consent_record() is None:
            raise HTTPException(403, "no consent on record: run kuzot consent first")
        await trio.to_thread.run_sync(launcher.start)
        return RedirectResponse(f"/{lang}/volunteer", status_code=303, headers={"Cache-Control": "no-store"})

    return [
        Route("/{lang}/volunteer", show),
        Route("/{lang}/volunteer/run", run_now, methods=["POST"]),
    ]
