"""Check a report directory: every file against its manifest, every evidence line against
its content hash and signature.

Why it lives in the probe: verifying needs only the files, the canonical-JSON rule and
ed25519, the same code the probe uses to sign.  A journalist, an editor or a sceptic can
run ``kuzot verify DIR`` on a copy of a report with no database and no network.

Every problem is named as precisely as we can: the file, the line, the measurement.  A
changed byte in one measurement is reported twice on purpose, once as the evidence
file's manifest mismatch and once as that line's content hash (and signature) mismatch:
the first says *that* the bundle changed, the second says *which* measurement.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from probe.i18n import N_, Message, localized, ngettext
from probe.i18n import gettext as _
from probe.signing import content_hash_of, verify_envelope

#: Must equal ``analysis.evidence``'s (the probe may not import analysis).
EVIDENCE_DIR = "evidence"
MANIFEST_NAME = "MANIFEST.sha256"
MANIFEST_PATH = f"{EVIDENCE_DIR}/{MANIFEST_NAME}"

# ``sha256sum`` writes "<hex>  <path>" (text mode) or "<hex> *<path>" (binary mode).
_MANIFEST_LINE = re.compile(r"(?P<hex>[0-9a-fA-F]{64}) [ *](?P<path>.+)")


@dataclass(frozen=True)
class Problem:
    """One thing wrong, located: ``path`` relative to the report directory, ``line``
    (1-based) within it when the problem is one line, and the measurement concerned."""

    path: str
    line: int | None
    measurement_id: str | None
    message: str

    def __str__(self) -> str:
        return self.localized("en")

    def localized(self, lang: str | None = None) -> str:
        """The problem for a person, in ``lang`` (else the terminal's language); the
        JSON output keeps the English ``message``."""
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        message = localized(self.message, lang)
        if self.measurement_id:
            text = _("{where}: measurement {id}: {message}", lang)
            return text.format(where=where, id=self.measurement_id, message=message)
        return f"{where}: {message}"


@dataclass
class VerifyResult:
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0
    measurements_checked: int = 0
    signatures_checked: int = 0
    unsigned: int = 0
    #: False when the directory or its manifest is missing: nothing could be checked,
    #: which is a different answer from "checked and found wrong".
    manifest_found: bool = True

    @property
    def ok(self) -> bool:
        return self.manifest_found and not self.problems

    def add(
        self, path: str, message: str, line: int | None = None, measurement_id: str | None = None
    ) -> None:
        self.problems.append(Problem(path, line, measurement_id, message))

    def summary(self, lang: str | None = None) -> str:
        """One line for a person, in ``lang`` (else the terminal's language)."""
        counts = {
            "files": self.files_checked,
            "measurements": self.measurements_checked,
            "signatures": self.signatures_checked,
            "unsigned": self.unsigned,
        }
        if self.ok:
            text = _(
                "OK: {files} files, {measurements} measurements, "
                "{signatures} signatures verified ({unsigned} unsigned)",
                lang,
            )
            return text.format(**counts)
        failed = ngettext(
            "FAILED: {n} problem(s); checked {files} files, {measurements} measurements, "
            "{signatures} signatures ({unsigned} unsigned)",
            "FAILED: {n} problem(s); checked {files} files, {measurements} measurements, "
            "{signatures} signatures ({unsigned} unsigned)",
            len(self.problems),
            lang,
        )
        return failed.format(n=len(self.problems), **counts)

    def to_dict(self) -> dict[str, Any]:
        """The result as data: every message in English (scripts parse it)."""
        data = asdict(self)
        for problem in data["problems"]:
            problem["message"] = str(problem["message"])
        data["ok"] = self.ok
        return data


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _safe_relative(text: str) -> str | None:
    """The path if it stays inside the report directory, else None: a manifest must never
    make us read ``/etc/passwd`` or ``../../secret``."""
    path = PurePosixPath(text)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\\" in text:
        return None
    return path.as_posix()


def _read_manifest(manifest: Path, result: VerifyResult) -> dict[str, str]:
    """``{relative path: expected hex}``; malformed lines are problems, not crashes."""
    expected: dict[str, str] = {}
    raw = manifest.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        result.add(MANIFEST_PATH, Message(N_("the manifest is empty: it vouches for no file")))
    for number, raw_line in enumerate(lines, start=1):
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            result.add(MANIFEST_PATH, Message(N_("not UTF-8 text; not a sha256sum manifest line")), number)
            continue
        match = _MANIFEST_LINE.fullmatch(text.rstrip("\r"))
        if not match:
            result.add(
                MANIFEST_PATH,
                Message(N_('not a sha256sum line ("<sha256>  <path>"): {line}'), line=repr(text[:80])),
                number,
            )
            continue
        rel = _safe_relative(match["path"])
        if rel is None:
            result.add(
                MANIFEST_PATH,
                Message(N_("path {path} points outside the report directory"), path=repr(match["path"])),
                number,
            )
        elif rel == MANIFEST_PATH:
            result.add(
                MANIFEST_PATH,
                Message(N_("the manifest lists itself; a file cannot carry its own hash")),
                number,
            )
        elif rel in expected:
            result.add(MANIFEST_PATH, Message(N_("{path} is listed twice"), path=rel), number)
        else:
            expected[rel] = match["hex"].lower()
    return expected


def _present_files(out_dir: Path) -> set[str]:
    """Every file under the directory (symbolic links included, so they can be reported)."""
    present: set[str] = set()
    for root, dirs, files in os.walk(out_dir):
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            present.add((Path(root) / name).relative_to(out_dir).as_posix())
    present.discard(MANIFEST_PATH)
    return present


def _check_files(out_dir: Path, expected: dict[str, str], result: VerifyResult) -> None:
    present = _present_files(out_dir)
    for rel, want in sorted(expected.items()):
        path = out_dir / rel
        if path.is_symlink():
            result.add(rel, Message(N_("is a symbolic link; a report bundle holds only plain files")))
        elif not path.exists():
            result.add(rel, Message(N_("listed in the manifest but missing")))
        elif not path.is_file():
            result.add(rel, Message(N_("listed in the manifest but not a regular file")))
        else:
            result.files_checked += 1
            got = _sha256_file(path)
            if got != want:
                changed = N_("changed since the manifest was written: SHA-256 is {got}, manifest says {want}")
                result.add(rel, Message(changed, got=got, want=want))
    for rel in sorted(present - expected.keys()):
        result.add(
            rel, Message(N_("not listed in the manifest (added or renamed after the report was made)"))
        )


class _Ambiguous(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON with a key twice means different things to different parsers (first or last
    wins), so a record could verify here and read differently elsewhere: refuse it."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _Ambiguous(Message(N_("key {key} appears twice in one object"), key=repr(key)))
        data[key] = value
    return data


def _no_constants(name: str) -> Any:
    raise _Ambiguous(Message(N_("{name} is not JSON"), name=name))


def _check_line(
    rel: str, number: int, raw: bytes, result: VerifyResult, seen: dict[str, tuple[str, int]]
) -> None:
    try:
        entry = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants
        )
    except UnicodeDecodeError:
        result.add(rel, Message(N_("not UTF-8 text")), number)
        return
    except _Ambiguous as exc:
        result.add(rel, Message(N_("ambiguous JSON: {error}"), error=exc.args[0]), number)
        return
    except json.JSONDecodeError as exc:
        result.add(
            rel,
            Message(N_("not valid JSON ({error} at column {column})"), error=exc.msg, column=exc.colno),
            number,
        )
        return
    except RecursionError:
        result.add(rel, Message(N_("not an evidence entry: JSON nested too deeply to read")), number)
        return
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        result.add(rel, Message(N_("not readable JSON ({error})"), error=str(exc)[:120]), number)
        return
    try:
        _check_entry(rel, number, entry, result, seen)
    except UnicodeEncodeError:
        result.add(
            rel, Message(N_("holds a lone surrogate (\\ud800-\\udfff), which is not text: no hash")), number
        )
    except (RecursionError, ValueError) as exc:
        result.add(
            rel, Message(N_("cannot be hashed as canonical JSON ({error})"), error=type(exc).__name__), number
        )


def _check_entry(
    rel: str, number: int, entry: Any, result: VerifyResult, seen: dict[str, tuple[str, int]]
) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("record"), dict):
        result.add(
            rel, Message(N_('not an evidence entry: expected a JSON object with a "record" object')), number
        )
        return
    record: dict[str, Any] = entry["record"]
    mid = entry.get("id")
    if not isinstance(mid, str) or not mid:
        mid = record.get("id") if isinstance(record.get("id"), str) else None
        result.add(rel, Message(N_('the entry has no "id"')), number, mid)
    elif record.get("id") != mid:
        result.add(
            rel,
            Message(N_("the record's own id is {id}, not the entry's id"), id=repr(record.get("id"))),
            number,
            mid,
        )
    result.measurements_checked += 1
    if mid is not None:
        if mid in seen:
            first_rel, first_line = seen[mid]
            result.add(
                rel,
                Message(
                    N_("appears again (first at {where}); counted twice"), where=f"{first_rel}:{first_line}"
                ),
                number,
                mid,
            )
        else:
            seen[mid] = (rel, number)

    claimed = entry.get("content_hash")
    if not isinstance(claimed, str):
        # verify_envelope skips an absent hash; evidence must always state one.
        result.add(
            rel,
            Message(N_("no content hash; the record hashes to {hash}"), hash=content_hash_of(record)),
            number,
            mid,
        )
        claimed = None
    signature, public_key, key_id = entry.get("signature"), entry.get("public_key"), entry.get("key_id")
    if signature or public_key:
        result.signatures_checked += 1
        if not key_id:
            result.add(rel, Message(N_("signed, but no key id is given")), number, mid)
    else:
        result.unsigned += 1
        if key_id:
            result.add(
                rel,
                Message(N_("names key id {key_id} but carries no signature or public key"), key_id=key_id),
                number,
                mid,
            )
    envelope = {"content_hash": claimed, "signature": signature, "public_key": public_key, "key_id": key_id}
    for message in verify_envelope(record, envelope):
        result.add(rel, message, number, mid)


def _check_evidence(out_dir: Path, result: VerifyResult) -> None:
    evidence = out_dir / EVIDENCE_DIR
    files = sorted(p for p in evidence.glob("*.jsonl") if p.is_file() and not p.is_symlink())
    if not files:
        result.add(
            EVIDENCE_DIR, Message(N_("no evidence file (*.jsonl): there are no measurements to check"))
        )
        return
    seen: dict[str, tuple[str, int]] = {}
    for path in files:
        rel = path.relative_to(out_dir).as_posix()
        # Split on newline bytes only: str.splitlines() would also split on U+2028 and
        # friends, which canonical JSON leaves unescaped inside strings.
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.removesuffix(b"\n")
                if line.strip():
                    _check_line(rel, number, line, result, seen)


def verify_report(out_dir: Path) -> VerifyResult:
    """Check the report directory ``out_dir`` and say everything wrong with it.

    Never raises for a bad bundle: a missing directory or manifest sets
    ``manifest_found`` false (with a problem saying so); anything else is a
    :class:`Problem` in the result."""
    out_dir = Path(out_dir)
    result = VerifyResult()
    if not out_dir.is_dir():
        result.manifest_found = False
        result.add(str(out_dir), Message(N_("no such directory")))
        return result
    manifest = out_dir / MANIFEST_PATH
    for link in (out_dir / EVIDENCE_DIR, manifest):
        if link.is_symlink():
            # A link could vouch for files anywhere: a bundle holds only plain files.
            result.add(
                link.relative_to(out_dir).as_posix(),
                Message(
                    N_(
                        "is a symbolic link (to {target}); a report bundle holds only plain files, "
                        "so nothing can be checked"
                    ),
                    target=os.readlink(link),
                ),
            )
            return result
    if not manifest.is_file():
        result.manifest_found = False
        result.add(
            MANIFEST_PATH,
            Message(
                N_("no {manifest}, so nothing can be checked (is this a directory written by kuzot report?)"),
                manifest=MANIFEST_PATH,
            ),
        )
        return result
    expected = _read_manifest(manifest, result)
    _check_files(out_dir, expected, result)
    _check_evidence(out_dir, result)
    return result
