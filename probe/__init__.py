"""Kuzot probe: measure DNS, TCP, TLS and HTTP reachability of news sites.

The probe measures and records; it never judges. Judging lives in the separate
``analysis`` package, which reads the archival records defined in
:mod:`probe.records`, so that old data can be re-judged with better rules.
"""

__version__ = "0.1.0"
SOFTWARE_NAME = "kuzot"
