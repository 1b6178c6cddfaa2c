"""The chat UI: a Gradio app that reaches the docqa service over its HTTP API only.

``ui.mount.mount_ui(app, "/ui", UiConfig(api_url=...))`` adds it to any FastAPI app (``docqa
serve`` mounts it beside the API; ``docqa ui`` serves it alone). The package imports nothing from
the service: ``client`` speaks HTTP (``sse``, ``errors``, ``types`` are its parts), ``highlight``
and ``render`` are pure, ``conversation`` is the session's data, ``callbacks`` and ``blocks`` the
Gradio side, ``mount`` the network-safe Gradio options. Importing ``ui.config`` or ``ui.client``
does not import Gradio.
"""
