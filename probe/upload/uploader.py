"""Send this probe's measurements to a collector, losing and duplicating nothing.

The queue is the database itself: a measurement waits while its ``uploaded_at`` is
NULL.  It is set only after the collector has answered for that very id ("stored" or
"duplicate"), so whatever goes wrong in between (the network drops, the collector
restarts, this process is killed) the measurement is simply sent again next time, and
the collector, idempotent by id, answers "duplicate" for what it already has.

Errors are sorted by what retrying can change: network errors and 5xx answers are
retried with exponential backoff and jitter (many probes must not come back in
lockstep after an outage), and a 429 waits as long as the collector's Retry-After
says; a 413 halves the batch, and so does a 400 (an unreadable batch: halving finds
the one item that makes it so); a 422 or 409 names the refused items, which stay
queued and are reported while the rest go on at once; a 401 registers once more
(the collector may have been reset).  After registering, the probe proves it holds its
signing key (``POST /api/v1/keys``), so that a collector accepts its signed records
from the new registration too.

The registration token lives in the config directory beside the signing key, in a
file only the owner can read.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from probe import __version__
from probe.errors import UploadError
from probe.store import Store
from probe.store.queue import mark_uploaded, queued_count, queued_rows
from probe.store.queue import queued_ids as _queued_ids
from probe.upload.pacing import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ITEMS

TOKEN_FILE = "collector-tokens.json"
#: Bytes kept free under the collector's body limit for the batch's own framing.
_FRAMING = 64


@dataclass
class UploadResult:
    collector: str
    #: Measurements the collector acknowledged in this upload, and how.
    acknowledged: int = 0
    stored: int = 0
    duplicate: int = 0
    batches: int = 0
    retries: int = 0
    #: Items the collector refused (id, HTTP status, its reason); they stay queued.
    rejected: list[dict[str, Any]] = field(default_factory=list)
    #: Measurements still waiting after this upload.
    remaining: int = 0
    #: Why the upload stopped before the queue was empty, if it did.
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collector_base(url: str) -> str:
    """The collector's base URL, whether given as the site or as an API path."""
    base = url.strip().rstrip("/")
    for suffix in ("/api/v1/measurements", "/api/v1/probes", "/api/v1/health", "/api/v1"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    if not base.startswith(("http://", "https://")):
        raise UploadError(f"{url!r} is not an http:// or https:// URL")
    return base


# --- the token file ---------------------------------------------------------------------


def _token_path(directory: Path) -> Path:
    return directory / TOKEN_FILE


def _read_tokens(directory: Path) -> dict[str, dict[str, str]]:
    path = _token_path(directory)
    if not path.exists():
        return {}
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise UploadError(f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UploadError(f"{path} is unreadable ({exc}); delete it to register again") from exc
    return data if isinstance(data, dict) else {}


def load_token(directory: Path, base: str) -> dict[str, str] | None:
    entry = _read_tokens(directory).get(base)
    if isinstance(entry, dict) and isinstance(entry.get("token"), str):
        return entry
    return None


def save_token(directory: Path, base: str, probe_id: str, token: str) -> None:
    """Write the token file with mode 0600 from the start, replacing it atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = _read_tokens(directory)
    tokens[base] = {"probe_id": probe_id, "token": token}
    tmp = directory / f".{TOKEN_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(tokens, indent=2).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, _token_path(directory))


# --- the queue --------------------------------------------------------------------------


def _item_json(row: Any) -> bytes:
    """One batch item, assembled around the stored canonical record without re-parsing
    it: the bytes the collector hashes are exactly the bytes that were signed."""
    envelope: dict[str, str] = {"content_hash": row.content_hash}
    if row.signature:
        envelope.update(signature=row.signature, public_key=row.public_key or "")
        if row.key_id:
            envelope["key_id"] = row.key_id
    head = json.dumps(envelope, separators=(",", ":"))[:-1]
    return f'{head},"record":{row.record}}}'.encode()


def _items(store: Store, ids: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(id, item JSON) for the ids still queued, read a few hundred at a time."""
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        rows = queued_rows(store, chunk)
        for mid in chunk:
            if mid in rows:  # gone meanwhile: another upload acknowledged it
                yield mid, _item_json(rows[mid])


# --- the uploader -----------------------------------------------------------------------


class _GiveUp(Exception):
    pass


class Uploader:
    """One upload of everything queued in ``store`` to one collector."""

    def __init__(
        self,
        store: Store,
        collector_url: str,
        *,
        config_directory: Path | None = None,
        batch_items: int = DEFAULT_BATCH_ITEMS,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if config_directory is None:
            from probe.volunteer.paths import config_dir

            config_directory = config_dir()
        self.store = store
        self.base = collector_base(collector_url)
        self.config_directory = config_directory
        self.batch_items = max(1, batch_items)
        self.batch_bytes = max(1024, batch_bytes)
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.transport = transport
        self.sleep = sleep
        self.log = log or (lambda _message: None)
        self.result = UploadResult(collector=self.base)

    # -- HTTP with retries -------------------------------------------------------------

    def _request(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first answer that is not a transient failure; gives up after the retries."""
        attempt = 0
        while True:
            why: str
            try:
                response = client.request(method, f"{self.base}{path}", **kwargs)
            except httpx.TransportError as exc:
                why = f"network error: {type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                why = f"the collector answered {response.status_code}"
            if attempt >= self.max_retries:
                raise _GiveUp(f"{why} (gave up after {attempt + 1} attempts)")
            delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
            wait = _retry_after(response) if why.endswith("429") else None
            if wait is not None:
                delay = min(self.max_backoff, wait)
            self.log(f"{why}; retrying in {delay:.1f} s")
            self.result.retries += 1
            attempt += 1
            self.sleep(delay)

    def _limits(self, client: httpx.Client) -> None:
        response = self._request(client, "GET", "/api/v1/health")
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict) or data.get("service") != "collector":
            raise _GiveUp(
                f"{self.base} is not a Kuzot collector (GET /api/v1/health: {response.status_code})"
            )
        limits = data.get("limits") or {}
        if isinstance(limits.get("max_items"), int):
            self.batch_items = max(1, min(self.batch_items, limits["max_items"]))
        if isinstance(limits.get("max_bytes"), int):
            self.batch_bytes = max(1024, min(self.batch_bytes, limits["max_bytes"] - _FRAMING))

    def _register(self, client: httpx.Client) -> str:
        response = self._request(client, "POST", "/api/v1/probes", json={})
        try:
            data = response.json()
            probe_id, token = str(data["probe_id"]), str(data["token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _GiveUp(f"registration failed: {response.status_code} {response.text[:200]}") from exc
        save_token(self.config_directory, self.base, probe_id, token)
        self.log(f"registered with {self.base} as probe {probe_id}")
        self._prove_key(client, token, probe_id)
        return token

    def _prove_key(self, client: httpx.Client, token: str, probe_id: str) -> None:
        """Show the collector this registration holds the installation's signing key."""
        from probe.signing import KEY_FILE, SigningKeyError, load_or_create_key

        if not (self.config_directory / KEY_FILE).exists():
            return  # this installation has signed nothing
        try:
            key = load_or_create_key(self.config_directory)
        except SigningKeyError as exc:
            self.log(f"cannot prove the signing key to the collector: {exc}")
            return
        response = self._request(
            client,
            "POST",
            "/api/v1/keys",
            json=key.prove(probe_id),
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code not in (200, 404):  # 404: a collector older than key proofs
            self.log(f"the collector did not accept the key proof: {_error_text(response)}")

    # -- batches -----------------------------------------------------------------------

    def _batches(self, items: Iterator[tuple[str, bytes]]) -> Iterator[list[tuple[str, bytes]]]:
        batch: list[tuple[str, bytes]] = []
        size = 0
        for mid, body in items:
            if batch and (len(batch) >= self.batch_items or size + len(body) + 1 > self.batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append((mid, body))
            size += len(body) + 1
        if batch:
            yield batch

    def _send(self, client: httpx.Client, token: str, batch: list[tuple[str, bytes]]) -> str:
        """Send one batch, splitting and dropping refused items as the collector asks.
        Returns the token in use (it changes if the collector forgot this probe)."""
        pending = [batch]
        reregistered = False
        while pending:
            current = pending.pop(0)
            body = b'{"measurements":[' + b",".join(item for _, item in current) + b"]}"
            response = self._request(
                client,
                "POST",
                "/api/v1/measurements",
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            status = response.status_code
            if status == 200:
                self._acknowledge(current, response)
                continue
            error = _error_text(response)
            if status == 401 and not reregistered:
                self.log(f"the collector does not know this probe ({error}); registering again")
                token = self._register(client)
                reregistered = True
                pending.insert(0, current)
            elif status in (400, 413) and len(current) > 1:
                half = len(current) // 2
                pending[:0] = [current[:half], current[half:]]
            elif status in (400, 409, 413, 422):
                refused = _refused(response, len(current)) if status in (409, 422) else {0: error}
                if not refused:
                    raise _GiveUp(f"the collector refused a batch without naming the item: {error}")
                for index, why in sorted(refused.items()):
                    refused_id = current[index][0]
                    self.result.rejected.append({"id": refused_id, "status": status, "error": why})
                    self.log(f"measurement {refused_id} refused ({status}): {why}; it stays queued")
                rest = [item for i, item in enumerate(current) if i not in refused]
                if rest:
                    pending.insert(0, rest)
            else:
                raise _GiveUp(f"the collector answered {status}: {error}")
        return token

    def _acknowledge(self, batch: list[tuple[str, bytes]], response: httpx.Response) -> None:
        sent = {mid for mid, _ in batch}
        try:
            results = response.json()["results"]
            acknowledged = [
                (r["id"], r["status"])
                for r in results
                if r.get("id") in sent and r.get("status") in ("stored", "duplicate")
            ]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _GiveUp(f"the collector's answer is not readable: {response.text[:200]}") from exc
        ids = [mid for mid, _ in acknowledged]
        mark_uploaded(self.store, ids)
        self.result.batches += 1
        self.result.acknowledged += len(ids)
        self.result.stored += sum(1 for _, s in acknowledged if s == "stored")
        self.result.duplicate += sum(1 for _, s in acknowledged if s == "duplicate")

    def run(self) -> UploadResult:
        headers = {"User-Agent": f"kuzot/{__version__}"}
        with httpx.Client(timeout=self.timeout, transport=self.transport, headers=headers) as client:
            try:
                ids = _queued_ids(self.store)
                if ids:  # nothing queued: no need to reach the collector at all
                    self._limits(client)
                    entry = load_token(self.config_directory, self.base)
                    token = entry["token"] if entry else self._register(client)
                    for batch in self._batches(_items(self.store, ids)):
                        token = self._send(client, token, batch)
            except _GiveUp as exc:
                self.result.error = str(exc)
        self.result.remaining = queued_count(self.store)
        return self.result


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"]
    except ValueError:
        pass
    return response.text[:200] or f"HTTP {response.status_code}"


def _refused(response: httpx.Response, size: int) -> dict[int, str]:
    """{index: why} of every item the collector's 422 or 409 names."""
    try:
        data = response.json()
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    refused: dict[int, str] = {}
    problems = data.get("problems")
    for problem in problems if isinstance(problems, list) else []:
        if isinstance(problem, dict) and isinstance(problem.get("index"), int):
            index = problem["index"]
            if 0 <= index < size and index not in refused:
                field = problem.get("field") or ""
                refused[index] = f"measurements[{index}].{field}: {problem.get('message')}"
    index = data.get("index")
    if isinstance(index, int) and 0 <= index < size and index not in refused:
        refused[index] = _error_text(response)
    return refused


def _retry_after(response: httpx.Response | None) -> float | None:
    """Seconds from a Retry-After header (the delay form; dates are not used here)."""
    if response is None:
        return None
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


def upload(store: Store, collector_url: str, **options: Any) -> UploadResult:
    """Upload everything queued in ``store``; see :class:`Uploader` for the options."""
    return Uploader(store, collector_url, **options).run()


def upload_database(db_url: str | None, collector_url: str, **options: Any) -> UploadResult:
    """Upload what is queued in the database at ``db_url`` (an existing one: a wrong URL is
    an error, not a new empty database); ``kuzot upload`` and the end of a run use it."""
    store = Store.open(db_url, must_exist=True)
    try:
        return upload(store, collector_url, **options)
    finally:
        store.close()
