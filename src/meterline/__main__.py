from meterline.cli import entrypoint

entrypoint()
