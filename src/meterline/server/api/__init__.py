"""API routers of the collector, one module per area (see ``meterline.server.app.ROUTERS``)."""
