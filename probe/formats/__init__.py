"""Other projects' data formats, converted to and from our archival records.

Why a package of its own: a converter is neither measuring (``probe.steps``) nor
judging (``analysis``); it only maps one record shape onto another, so it stays pure
and the command modules do the reading and writing of files.
"""
