"""The collector: where volunteers' probes send their measurements (``kuzot serve``).

``app`` is the HTTP interface, ``validate`` checks an uploaded item before anything is
stored, ``tokens`` registers probes without learning anything about the volunteer, and
``openapi`` describes the interface.  The probe's side is :mod:`probe.upload`.
"""
