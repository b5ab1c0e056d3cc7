"""The meterline collector (``meterline serve``): FastAPI app, needs ``pip install 'meterline[server]'``.

Never imported by ``import meterline``: the SDK talks to it over plain HTTP (``meterline.sdk.sinks.http``).
"""
