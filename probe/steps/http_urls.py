"""Where a redirect may lead: the URLs the HTTP step accepts, and the ``Location``
headers it refuses (``mailto:``, ``javascript:``, ``http://`` with no host...), never
raising for what a server sent.
"""

from __future__ import annotations

import re

import httpx


def redirect_target(current_url: str, location: str) -> httpx.URL | None:
    """Where ``Location`` leads from ``current_url``, or ``None`` when it names no
    http(s) host we could go to.  Never raises: the header is the server's, not ours."""
    try:
        if authority_without_host(location):
            return None  # "http://": joined with ours it would loop on our own URL
        next_url = httpx.URL(current_url).join(location).copy_with(fragment=None)
        check_url(next_url)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return None
    return next_url


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def authority_without_host(location: str) -> bool:
    """Whether ``location`` has an authority part with no host in it (``http://``,
    ``http:///path``, ``//``).  Resolved against the current URL such a reference keeps
    the current host, so the probe would loop on its own URL; it is invalid instead."""
    text = location.strip()
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme else text
    if not rest.startswith("//"):
        return False
    authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return host == "[]"
    return host.partition(":")[0] == ""


def parse_url(text: str) -> httpx.URL:
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {text!r} ({exc})") from None
    check_url(url)
    return url


def check_url(url: httpx.URL) -> None:
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise ValueError(f"not an http(s) URL with a host: {str(url)!r}")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"port {url.port} out of range in {str(url)!r}")
    try:
        url.host  # noqa: B018 -- decodes the A-labels; httpx does it again for every request
    except UnicodeError as exc:  # idna.IDNAError too: "xn--zz" is no name
        raise ValueError(f"not a valid host name in {str(url)!r}: {exc}") from None
