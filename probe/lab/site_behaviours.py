"""What a lab site does, and to whom: the :class:`Behaviour` a censored client gets
(by source address, :class:`SitePolicy`) and the honest pages everyone else gets.

Data only: :mod:`probe.lab.web_servers` plays these on real sockets.  Lab scenarios
(:mod:`probe.lab.scenarios`) name the common ones; tests of hostile servers build the
rest directly.
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

#: The cookie a :attr:`Action.COOKIE_CHECK` site sets and wants back.
COOKIE_CHECK_VALUE = "kuzot_check=passed"

#: Where the probe's connections come from by default (see the module docstring).
PROBE_SOURCE = "127.0.0.1"

#: The Homeline blockpage, as OONI's fingerprint ``ooni.kg_0`` knows it.
HOMELINE_BLOCKPAGE_URL = "http://homeline.kg/access/blockpage.html"

#: The marker every lab blockpage carries, so a test can tell it from a real page.
BLOCKPAGE_MARKER = "KUZOT-LAB-BLOCKPAGE"

#: ElCat's blockpage sentence (Censored Planet ``c_isp_kg_elcat``), verbatim.
ELCAT_PHRASE = '<p class="error">Access to the requested website has been blocked by judicial decision!</p>'

BLOCKPAGE_TITLE = "Access denied"

BLOCKPAGE_HTML = f"""<!DOCTYPE html>
<html lang="ru">
<head>
<meta charset="utf-8">
<title>{BLOCKPAGE_TITLE}</title>
<!-- {BLOCKPAGE_MARKER} -->
</head>
<body>
<h1>Доступ ограничен</h1>
{ELCAT_PHRASE}
<p>Ресурс заблокирован по решению уполномоченного органа.</p>
</body>
</html>
""".encode()


# --- what a site does ---------------------------------------------------------------


class Action(StrEnum):
    """What a site does to a censored client."""

    HONEST = "honest"  # the real site
    RESET = "reset"  # accept, then RST once the client has sent, before any answer
    CLOSE = "close"  # read the client's first bytes, then FIN without a byte (an EOF)
    BLACKHOLE = "blackhole"  # accept and stay silent
    SNI_RESET = "sni_reset"  # RST when the ClientHello's SNI is one of ``names``
    HOST_RESET = "host_reset"  # RST when the request's Host is one of ``names``
    BLOCKPAGE_200 = "blockpage_200"  # the ElCat-style blockpage, status 200
    BLOCKPAGE_REDIRECT = "blockpage_redirect"  # 302 to ``location`` (Homeline-style)
    ENDLESS_BODY = "endless_body"  # a 200 whose body never ends
    DRIP = "drip"  # a 200 whose body comes one byte per ``seconds``
    GARBAGE = "garbage"  # random bytes instead of HTTP (or TLS)
    SLOW = "slow"  # the honest answer after ``seconds``
    BOMB = "bomb"  # a 200 of ``size`` zero bytes compressed with ``encoding`` (e.g. "gzip, gzip")
    MANY_HEADERS = "many_headers"  # a 200 with ``size`` extra header lines
    ENDLESS_HEADERS = "endless_headers"  # a status line, then header lines that never end
    COOKIE_CHECK = "cookie_check"  # 302 to the same URL with a cookie, the page once it comes back


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One action with its parameters; immutable, so swapping it is atomic."""

    action: Action = Action.HONEST
    names: frozenset[str] = frozenset()
    seconds: float = 0.0
    location: str = HOMELINE_BLOCKPAGE_URL
    encoding: str = ""
    size: int = 0

    @classmethod
    def honest(cls) -> Behaviour:
        return cls(Action.HONEST)

    @classmethod
    def reset(cls) -> Behaviour:
        return cls(Action.RESET)

    @classmethod
    def close(cls) -> Behaviour:
        return cls(Action.CLOSE)

    @classmethod
    def blackhole(cls) -> Behaviour:
        return cls(Action.BLACKHOLE)

    @classmethod
    def sni_reset(cls, *names: str) -> Behaviour:
        return cls(Action.SNI_RESET, names=_names(names))

    @classmethod
    def host_reset(cls, *names: str) -> Behaviour:
        return cls(Action.HOST_RESET, names=_names(names))

    @classmethod
    def blockpage_200(cls) -> Behaviour:
        return cls(Action.BLOCKPAGE_200)

    @classmethod
    def blockpage_redirect(cls, location: str = HOMELINE_BLOCKPAGE_URL) -> Behaviour:
        return cls(Action.BLOCKPAGE_REDIRECT, location=location)

    @classmethod
    def endless_body(cls) -> Behaviour:
        return cls(Action.ENDLESS_BODY)

    @classmethod
    def drip(cls, seconds: float = 1.0) -> Behaviour:
        return cls(Action.DRIP, seconds=seconds)

    @classmethod
    def garbage(cls) -> Behaviour:
        return cls(Action.GARBAGE)

    @classmethod
    def slow(cls, seconds: float) -> Behaviour:
        return cls(Action.SLOW, seconds=seconds)

    @classmethod
    def bomb(cls, encoding: str = "gzip, gzip", decoded_bytes: int = 1 << 30) -> Behaviour:
        """A decompression bomb: ``decoded_bytes`` of zeros under the codings of
        ``encoding`` (each ``gzip`` or ``deflate``, the first applied first).  One GiB as
        ``gzip, gzip`` is about 2 KB on the wire."""
        return cls(Action.BOMB, encoding=encoding, size=decoded_bytes)

    @classmethod
    def many_headers(cls, count: int = 10_001) -> Behaviour:
        return cls(Action.MANY_HEADERS, size=count)

    @classmethod
    def endless_headers(cls) -> Behaviour:
        return cls(Action.ENDLESS_HEADERS)

    @classmethod
    def cookie_check(cls) -> Behaviour:
        """An anti-bot check many sites run: no cookie, a redirect that sets one."""
        return cls(Action.COOKIE_CHECK)


def _names(names: Iterable[str]) -> frozenset[str]:
    return frozenset(name.strip().rstrip(".").lower() for name in names)


class SitePolicy:
    """What a site does to whom; change ``behaviour`` or ``censored_sources`` at any time.

    ``censored_sources`` is the set of client addresses that get ``behaviour``
    (default: the probe's 127.0.0.1); ``None`` means every client, for a site that is
    down for everyone.  Each is one attribute holding an immutable value, so an
    assignment from another thread is seen whole by the next connection.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        censored_sources: Iterable[str] | None = (PROBE_SOURCE,),
    ) -> None:
        self.behaviour = behaviour or Behaviour.honest()
        self.censored_sources = censored_sources
        #: Connections the site has accepted (tests count the probe's connections).
        self.accepted = 0

    @property
    def censored_sources(self) -> frozenset[str] | None:
        return self._censored_sources

    @censored_sources.setter
    def censored_sources(self, sources: Iterable[str] | None) -> None:
        self._censored_sources = (
            None if sources is None else frozenset(str(ipaddress.ip_address(s)) for s in sources)
        )

    def behaviour_for(self, client_ip: str) -> Behaviour:
        """The behaviour a client at ``client_ip`` gets on its next connection."""
        behaviour, sources = self.behaviour, self._censored_sources
        if sources is None or client_ip in sources:
            return behaviour
        return Behaviour.honest()


# --- pages ------------------------------------------------------------------------------

#: Host -> body, or a function of the host giving the body (``None``: 404).
Pages = Mapping[str, bytes] | Callable[[str], bytes | None]


def honest_title(host: str) -> str:
    """The ``<title>`` of :func:`honest_page` for ``host``."""
    return f"{host} — Latest news from Kyrgyzstan"


def honest_page(host: str) -> bytes:
    """A realistic page of a few KB for ``host``: its own title and text, so that a
    page of one site never matches another's by length or title."""
    name = html.escape(host)
    stories = "\n".join(
        f"<article><h2>Story {n} on {name}</h2><p>"
        + " ".join(f"Paragraph {n}.{k} of the report by {name} on the day's events." for k in range(6))
        + "</p></article>"
        for n in range(1, 9)
    )
    return (
        '<!DOCTYPE html>\n<html lang="ky">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(honest_title(host))}</title>\n"
        f'<link rel="canonical" href="https://{name}/">\n</head>\n<body>\n'
        f"<header><h1>{name}</h1><nav>News | Politics | Economy | Society</nav></header>\n"
        f"<main>\n{stories}\n</main>\n<footer>&copy; {name}</footer>\n</body>\n</html>\n"
    ).encode()


def page_for(pages: Pages | None, host: str) -> bytes | None:
    if pages is None:
        return honest_page(host)
    if callable(pages):
        return pages(host)
    return pages.get(host)
