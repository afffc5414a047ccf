"""Kuzot Explorer: read-only web pages, a JSON API and Atom feeds over a Kuzot database.

Layers, one module each: :mod:`.source` opens the database read-only and fetches single
records; :mod:`.cache` keeps verdicts and episodes current per rules_version;
:mod:`.queries` turns a snapshot into each page's data (the JSON API returns exactly
that data, the HTML pages render it); :mod:`.pages`, :mod:`.api`, :mod:`.feeds` and
:mod:`.bundle` are the routes; :mod:`.app` puts them together with the security headers.
"""
