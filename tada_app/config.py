"""What a running app may do: its roots, limits and model policy, read once from the environment.

Per instance (never module globals), so two apps in one process, or a test, each have their own.

==========================  ===========================================================
``TADA_MODEL``              default model (``tada-organism``)
``TADA_ALLOW_CUSTOM_MODELS`` ``1``: the model box also accepts a pipeline folder or Hub id
                            (off by default: a public Space offers the registry's models only)
``TADA_TEST_FIXTURES``      ``1``: the menu also offers the tiny random-weight test models
                            (``tiny-*``); off by default, and the app serves exactly what its menu shows
``TADA_MAX_MODELS``         models kept loaded at once (least recently used one evicted; 2)
``TADA_MAX_DURATION``       longest clip in seconds (30)
``TADA_MAX_STEPS``          most diffusion steps (200)
``TADA_MAX_SESSIONS``       visitor sessions whose page state the server keeps (gradio's
                            ``state_session_capacity``; least recently used dropped first; 64).
                            Each costs about a copy of the page's configuration, so this bounds memory
``TADA_CACHE_MINUTES``      served audio and images are deleted from gradio's cache after this many
                            minutes (60)
``TADA_DTYPE``              weights dtype: float32, bfloat16 or float16 (default: float32 on CPU, the
                            family's on a GPU)
``TADA_APP_RUNS``           folder for resumable long jobs (default: a new temporary folder
                            per app instance, removed at exit)
``SPACE_ID``                set by Hugging Face Spaces: hosted limits apply (below)
==========================  ===========================================================

Hosted limits (on a Space): localization at most 8 caption pairs x 2 seeds per job, one
long job at a time, at most 8 waiting.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_DURATION = 0.5   # shorter clips have too few frames for the concept measures and spectrograms


def _int(env: dict, key: str, default: int) -> int:
    try:
        return int(env.get(key, default))
    except ValueError:
        return default


@dataclasses.dataclass
class AppConfig:
    default_model: str = "tada-organism"
    allow_custom_models: bool = False
    max_models: int = 2
    max_duration: float = 30.0
    max_steps: int = 200
    hosted: bool = False
    vectors: Path = ROOT / "vectors"
    saes: Path = ROOT / "saes"
    results: Path = ROOT / "results"
    runs: Path | None = None
    max_pairs: int = 24
    max_job_seeds: int = 4
    job_queue: int = 32
    dtype: str | None = None
    test_fixtures: bool = False
    max_sessions: int = 64
    cache_minutes: int = 60

    @classmethod
    def from_env(cls, env: dict | None = None, **overrides) -> "AppConfig":
        from tada_core import DEFAULT_MODEL

        env = dict(os.environ if env is None else env)
        hosted = bool(env.get("SPACE_ID"))
        cfg = cls(default_model=env.get("TADA_MODEL", DEFAULT_MODEL),
                  allow_custom_models=env.get("TADA_ALLOW_CUSTOM_MODELS", "") == "1",
                  max_models=max(1, _int(env, "TADA_MAX_MODELS", 2)),
                  max_duration=float(env.get("TADA_MAX_DURATION", 30)), max_steps=_int(env, "TADA_MAX_STEPS", 200),
                  hosted=hosted, runs=Path(env["TADA_APP_RUNS"]) if env.get("TADA_APP_RUNS") else None,
                  max_pairs=8 if hosted else 24, max_job_seeds=2 if hosted else 4, job_queue=8 if hosted else 32,
                  dtype=env.get("TADA_DTYPE") or None, test_fixtures=env.get("TADA_TEST_FIXTURES", "") == "1",
                  max_sessions=max(1, _int(env, "TADA_MAX_SESSIONS", 64)),
                  cache_minutes=max(1, _int(env, "TADA_CACHE_MINUTES", 60)))
        if cfg.dtype is not None:
            from tada_core.registry import as_dtype

            as_dtype(cfg.dtype)   # a bad TADA_DTYPE fails at start, naming the accepted values
        return dataclasses.replace(cfg, **overrides)

    def models(self) -> list[str]:
        """The registry models this app offers in its menu, and serves: nothing else by name."""
        from tada_core import model_names

        names = model_names(listed_only=not self.test_fixtures)
        return names + ([self.default_model] if self.default_model not in names else [])

    def runs_folder(self) -> Path:
        """This instance's folder for resumable jobs (created on first use)."""
        if self.runs is None:
            self.runs = Path(tempfile.mkdtemp(prefix="tada-app-"))
            atexit.register(shutil.rmtree, self.runs, ignore_errors=True)
        self.runs.mkdir(parents=True, exist_ok=True)
        return self.runs
