"""``kuzot consent``: read, accept or withdraw the informed consent."""

from __future__ import annotations

import argparse

from probe.cli._common import add_json_option, emit
from probe.i18n import gettext as _
from probe.volunteer.consent import CONSENT_TEXT, consent_record, record_consent, withdraw_consent


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("consent", help="read, accept or withdraw the informed consent")
    p.add_argument("--show", action="store_true", help="print the consent text")
    p.add_argument("--lang", choices=sorted(CONSENT_TEXT), help="only this language")
    p.add_argument("--accept", action="store_true", help="accept the risks described")
    p.add_argument(
        "--withdraw", action="store_true", help="withdraw consent; runs stop until you accept again"
    )
    add_json_option(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.accept:
        record_consent("kuzot consent --accept")
        emit(args, {"accepted": True, **(consent_record() or {})}, _("Consent recorded."))
    elif args.withdraw:
        withdrawn = withdraw_consent()
        emit(
            args,
            {"accepted": False, "withdrawn": withdrawn},
            _("Consent withdrawn.") if withdrawn else _("There was no consent on record."),
        )
    elif args.show or args.lang:
        langs = [args.lang] if args.lang else ["en", "ru", "ky"]
        emit(
            args,
            {"texts": {lang: CONSENT_TEXT[lang] for lang in langs}},
            "\n\n".join(CONSENT_TEXT[lang] for lang in langs) + "\n",
        )
    else:
        record = consent_record()
        emit(
            args,
            {"accepted": record is not None, **(record or {})},
            _("Consent accepted on {at} ({how}).").format(at=record["at"], how=record["how"])
            if record
            else _("No consent on record."),
        )
    return 0
