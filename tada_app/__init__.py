"""The TADA Gradio app as a package: ``python app.py`` (or a Hugging Face Space) runs :func:`build_app`.

* :mod:`tada_app.config`: what an app instance may do (roots, limits, model policy), from the environment;
* :mod:`tada_app.checks`: every visitor value checked, one message naming the field and what is accepted;
* :mod:`tada_app.sources`: where free text may lead (shipped artifacts, folders under the roots, Hub ids);
* :mod:`tada_app.models`: the bounded model cache; :mod:`tada_app.jobs`: long jobs in a worker thread;
* :mod:`tada_app.handlers`: the request handlers (the public API, tested without a browser);
* :mod:`tada_app.ui`: one builder per tab.
"""

from .config import AppConfig
from .handlers import Handlers
from .models import ModelCache


def build_app(default_model: str | None = None, handlers: Handlers | None = None):
    from .ui import build_app as _build

    return _build(default_model, handlers)


def launch(app, **kwargs):
    from .ui import launch as _launch

    return _launch(app, **kwargs)


__all__ = ["AppConfig", "Handlers", "ModelCache", "build_app", "launch"]
