"""meterline inside the LiteLLM proxy: identity extraction, budget enforcement, the example auth hook.

The proxy callback itself is :mod:`meterline.gateway.callback` (``meterline.gateway.callback.handler``);
``meterline gateway`` (:mod:`meterline.cli.gateway`) starts the proxy with it wired in.
"""
