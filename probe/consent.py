"""Informed consent, asked once, before anything is measured.

Why a gate and not a README paragraph: volunteers in Kyrgyzstan take a personal risk
by running a censorship probe, and most are not programmers.  They must be told, in a
language they read, what is measured, what leaves their machine, what is never kept,
and what the law says, and agree before the first measurement.  Automation and
containers agree with ``--accept-risks`` or ``KUZOT_ACCEPT_RISKS=1``, which are
recorded the same way.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

#: Bumped when the text changes in substance: everyone is asked again.
CONSENT_VERSION = 1

CONSENT_TEXT: dict[str, str] = {
    "en": """\
KUZOT — BEFORE YOU START (please read)

What Kuzot does: it connects from your internet connection to the news and other sites
in its list (DNS lookups, TCP, TLS and HTTP connections) and records whether each one
works, is blocked, and how.

What is stored on this computer: the measurements, with your network's AS number and
country. Your IP address is never stored and never uploaded.
What is uploaded (only if you turn uploading on): the same measurements, signed by this
installation's key, to the collector you choose.

The risk: Kyrgyzstan's 2021 law "on protection against false information" lets the
Ministry of Culture block websites without a court, and some of the sites measured are
blocked or declared "extremist". Your internet provider, and anyone watching your
connection, can see that your computer connects to these sites. Running a censorship
measurement tool may be seen as a political act. Decide for yourself whether this is
safe for you; if in doubt, do not run it.

You can stop at any time: `kuzot schedule --remove` stops scheduled runs, `kuzot consent
--withdraw` withdraws this consent, and deleting your Kuzot data folder deletes every
measurement.""",
    "ru": """\
KUZOT — ПЕРЕД НАЧАЛОМ (пожалуйста, прочитайте)

Что делает Kuzot: с вашего интернет-подключения он обращается к новостным и другим
сайтам из своего списка (запросы DNS, соединения TCP, TLS и HTTP) и записывает, работает
ли каждый сайт, заблокирован ли он и каким способом.

Что хранится на этом компьютере: результаты измерений с номером автономной системы (AS)
вашей сети и страной. Ваш IP-адрес никогда не сохраняется и никуда не отправляется.
Что отправляется (только если вы включите отправку): те же измерения, подписанные ключом
этой установки, на выбранный вами сервер-сборщик.

Риск: закон Кыргызстана 2021 года «О защите от недостоверной (ложной) информации»
позволяет Министерству культуры блокировать сайты без суда, и некоторые из проверяемых
сайтов заблокированы или признаны «экстремистскими». Ваш интернет-провайдер и любой, кто
наблюдает за вашим подключением, может видеть, что ваш компьютер обращается к этим
сайтам. Запуск инструмента для измерения цензуры может быть воспринят как политический
поступок. Решите сами, безопасно ли это для вас; если сомневаетесь — не запускайте.

Остановиться можно в любой момент: `kuzot schedule --remove` отключает запуски по
расписанию, `kuzot consent --withdraw` отзывает это согласие, а удаление папки данных
Kuzot удаляет все измерения.""",
    "ky": """\
KUZOT — БАШТООДОН МУРУН (сураныч, окуп чыгыңыз)

Kuzot эмне кылат: сиздин интернет туташууңуздан өзүнүн тизмесиндеги жаңылык жана башка
сайттарга кайрылат (DNS суроолору, TCP, TLS жана HTTP туташуулары) жана ар бир сайт
иштейби, бөгөттөлгөнбү жана кантип бөгөттөлгөнүн жазып алат.

Бул компьютерде эмне сакталат: өлчөөлөр, сиздин тармагыңыздын AS номери жана өлкөсү
менен. Сиздин IP дарегиңиз эч качан сакталбайт жана эч жакка жөнөтүлбөйт.
Эмне жөнөтүлөт (жөнөтүүнү өзүңүз күйгүзсөңүз гана): ошол эле өлчөөлөр, ушул орнотмонун
ачкычы менен кол коюлуп, сиз тандаган чогултуучу серверге.

Тобокелдик: Кыргызстандын 2021-жылкы «Туура эмес (жалган) маалыматтан коргоо жөнүндө»
мыйзамы Маданият министрлигине сайттарды сотсуз бөгөттөөгө мүмкүндүк берет, жана
текшерилген сайттардын айрымдары бөгөттөлгөн же «экстремисттик» деп табылган. Сиздин
интернет-провайдериңиз жана туташууңузду байкаган ар ким сиздин компьютериңиз бул
сайттарга кайрылганын көрө алат. Цензураны өлчөөчү куралды иштетүү саясий иш катары
кабыл алынышы мүмкүн. Бул сиз үчүн коопсузбу, өзүңүз чечиңиз; шектенсеңиз — иштетпеңиз.

Каалаган убакта токтото аласыз: `kuzot schedule --remove` пландалган иштетүүлөрдү
токтотот, `kuzot consent --withdraw` бул макулдукту кайтарып алат, ал эми Kuzot
маалымат папкасын өчүрүү бардык өлчөөлөрдү өчүрөт.""",
}

_PROMPT = "Type yes / да / ооба to accept, anything else to stop: "
_YES = {"yes", "y", "да", "ооба"}


class ConsentRequired(Exception):
    """No consent on record and no way to ask; the message says what to do."""


def config_dir() -> Path:
    override = os.environ.get("KUZOT_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("kuzot"))


def _path(directory: Path | None) -> Path:
    return (directory or config_dir()) / "consent.json"


def consent_record(directory: Path | None = None) -> dict[str, object] | None:
    try:
        data = json.loads(_path(directory).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != CONSENT_VERSION or not data.get("accepted"):
        return None
    return data


def record_consent(how: str, directory: Path | None = None) -> None:
    path = _path(directory)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"version": CONSENT_VERSION, "accepted": True, "how": how, "at": datetime.now(UTC).isoformat()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def withdraw_consent(directory: Path | None = None) -> bool:
    try:
        _path(directory).unlink()
    except FileNotFoundError:
        return False
    return True


def require_consent(
    *,
    accept_flag: bool = False,
    env: Mapping[str, str] = os.environ,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stderr,
    config_dir: Path | None = None,
) -> None:
    """Return when consent is on record or given now; raise :class:`ConsentRequired`."""
    if consent_record(config_dir) is not None:
        return
    if accept_flag:
        record_consent("--accept-risks", config_dir)
        return
    if env.get("KUZOT_ACCEPT_RISKS") == "1":
        record_consent("KUZOT_ACCEPT_RISKS=1", config_dir)
        return
    if stdin is not None and stdin.isatty():
        for lang in ("en", "ru", "ky"):
            stdout.write(CONSENT_TEXT[lang] + "\n\n")
        stdout.write(_PROMPT)
        stdout.flush()
        answer = (stdin.readline() or "").strip().lower()
        if answer in _YES:
            record_consent("interactive", config_dir)
            return
        raise ConsentRequired("you did not accept the risks; nothing was measured")
    raise ConsentRequired(
        "nothing was measured: Kuzot needs your informed consent first. Read it with "
        "`kuzot consent --show`, then accept with `kuzot consent --accept`, or run with "
        "--accept-risks or KUZOT_ACCEPT_RISKS=1 (for automation and containers)"
    )
