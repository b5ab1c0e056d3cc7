"""meterline inside the LiteLLM proxy: identity extraction, budget enforcement, the example auth hook.

The proxy callback itself is :mod:`meterline.integrations.litellm_proxy` (``…litellm_proxy.handler``);
``meterline gateway`` (:mod:`meterline.cli.gateway`) starts the proxy with it wired in.
"""
