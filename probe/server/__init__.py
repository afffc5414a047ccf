"""The HTTP services' common ground: how an ASGI app is served (``asgi``)."""
