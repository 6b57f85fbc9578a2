"""TADA Gradio app: steer side by side, A/B-patch layers, look at localization and SAE features.

Run locally with ``python app.py`` (CPU, offline, on the shipped ``tada-organism``);
``TADA_MODEL=ace-step python app.py`` on a GPU machine with the weights cached. On a
Hugging Face Space this file is the entry point (front matter in README.md). The app
itself is the ``tada_app`` package; its settings are environment variables
(``tada_app/config.py``).
"""

from tada_app import build_app, launch

if __name__ == "__main__":
    launch(build_app())
