"""Optional pieces of Kuzot and the extra that installs each.

Why: a volunteer's install stays light, so the lab, PostgreSQL and ASN lookups are
extras in pyproject.toml.  When one is missing the user gets one line naming the
extra to install, never an import traceback.
"""

from __future__ import annotations

#: Top-level module -> (extra, what needs it).  Keep in step with
#: ``[project.optional-dependencies]`` in pyproject.toml.
OPTIONAL_MODULES: dict[str, tuple[str, str]] = {
    "trustme": ("lab", "the censorship labs (kuzot lab, kuzot demo)"),
    "psycopg": ("postgres", "PostgreSQL databases"),
    "psycopg2": ("postgres", "PostgreSQL databases"),
    "maxminddb": ("asn", "ASN lookups from a MaxMind/IPinfo database"),
}


def missing_extra_message(exc: BaseException) -> str | None:
    """The one line to print for an import of an optional module that failed, else ``None``."""
    if not isinstance(exc, ImportError):
        return None
    name = (exc.name or "").split(".")[0]
    if name not in OPTIONAL_MODULES:
        return None
    extra, what = OPTIONAL_MODULES[name]
    hint = ""
    if name == "psycopg2":
        hint = " and write the URL as postgresql+psycopg://..."
    return (
        f"{what} need the '{extra}' extra (module {name} is not installed): "
        f"pip install 'kuzot[{extra}]'{hint}"
    )


def find_missing_extra(exc: BaseException) -> str | None:
    """:func:`missing_extra_message` for ``exc``, its causes, or anything in an exception group."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        message = missing_extra_message(current)
        if message:
            return message
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None
