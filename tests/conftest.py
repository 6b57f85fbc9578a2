"""Tests run offline on tiny models built in code; nothing touches the network."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest  # noqa: E402

from tada_core import GenerationSettings, load_model  # noqa: E402
from tada_core.evaluation.scoring import Scorer  # noqa: E402

TINY = ["tiny-ace-step", "tiny-stable-audio", "tiny-audioldm2"]
# Every intervention test also runs on the shipped organism, with test-sized settings.
MODELS = TINY + ["tada-organism"]


@pytest.fixture(scope="session")
def models():
    """One instance per tiny model, shared by the tests (interventions leave no state behind)."""
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_model(name, device="cpu")
            loaded[name].set_progress_bar(False)
            if name == "tada-organism":
                loaded[name].defaults = GenerationSettings(duration=1.0, steps=4, guidance=3.0)
        return loaded[name]
    return get


@pytest.fixture(params=MODELS)
def model(request, models):
    return models(request.param)


def all_hooks(adapter):
    """Every forward (pre-)hook on the denoiser and its submodules, as a set of ids."""
    ids = set()
    for name, module in adapter.denoiser.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks"):
            ids |= {(name, kind, k) for k in getattr(module, kind)}
    return ids


@pytest.fixture
def cli(capsys):
    """Run the ``tada`` CLI in-process: returns (exit code, stdout, stderr)."""
    from tada_core.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


class Energy(Scorer):
    """A scorer that needs no model: the mean absolute amplitude of each clip."""

    name = "energy"

    def check(self, concept):
        pass

    def label(self, concept):
        return "mean |amplitude|"

    def measure(self, audio, sample_rate, concept):
        return audio.abs().mean(dim=(1, 2)).double().numpy()
