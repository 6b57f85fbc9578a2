"""Hostile values against every public endpoint of the launched app, through gradio_client, as a visitor of
a public Space would send them.

    python scripts/app_fuzz.py [--quick] [--musicgen] [--timeout 60]

Each endpoint is called with a valid request in which one parameter at a time is replaced by a hostile
value (huge and non-finite numbers, Unicode digits, 5000-digit strings, server paths, hidden models, wrong
types, very long text). A reply passes when it is a result or a one-line error message that names no
server path, quotes no file content, and is not an internal error; every call must answer within the
timeout. Prints one line per failure and a summary; exit code 1 when anything failed. ``--quick`` sends a
smaller set (the test suite runs it).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORG = "tada-organism"
SAE = "tada-organism-topk"
VEC = "tada-organism-tempo-caa"
QUICK = dict(duration=0.5, steps=1)

# a valid request per endpoint: the parameter names of the API, in order
VALID = {
    "/generate": dict(model=ORG, prompt="a waltz", seed=0, **QUICK),
    "/steer": dict(model=ORG, prompt="a waltz", seed=0, **QUICK, vector=VEC, repo_id="", layers=[3], alpha=1.0,
                   renorm=None, strategy=""),
    "/patch": dict(model=ORG, prompt_a="a slow waltz", prompt_b="a fast march", layers=[3], seed=0, **QUICK),
    "/localization": dict(model=ORG, concept="tempo"),
    "/compute_localization": dict(model=ORG, concept="tempo", pairs=1, seeds=1),
    "/feature_table": dict(sae=SAE, layer=5, concept="brightness"),
    "/browse_feature": dict(sae=SAE, layer=5, feature=0),
    "/steer_feature": dict(model=ORG, sae=SAE, layer=5, feature=0, concept="brightness", prompt="a waltz", seed=0,
                           **QUICK, alpha=1.0),
    "/mix": dict(model=ORG, prompt="a waltz", seed=0, **QUICK, names=[VEC], alphas=[1.0], renorm=None),
    # CLIP: a short uploaded WAV (made by `run`); the alphas box is text ("-2, 2")
    "/edit": dict(model=ORG, audio="CLIP", prompt="", seed=0, **QUICK, vector="tada-organism-brightness-caa",
                  repo_id="", alphas="1", strength=1.0),
}
# the same requests on the MusicGen organism (residual-stream layers, DiffMean vectors, durations it may refuse)
MUSICGEN = {
    "/generate": dict(VALID["/generate"], model="musicgen-organism"),
    "/steer": dict(VALID["/steer"], model="musicgen-organism", vector="musicgen-organism-tempo-diffmean",
                   layers=[0, 1, 2, 3], alpha=0.1, strategy="one-to-all"),
    "/patch": dict(VALID["/patch"], model="musicgen-organism", layers=[0]),
    "/localization": dict(VALID["/localization"], model="musicgen-organism"),
    "/mix": dict(VALID["/mix"], model="musicgen-organism", names=["musicgen-organism-tempo-diffmean"], alphas=[0.1]),
}
SECRET = "tada-fuzz-secret-7f3a"     # written into a server file; must never come back in a reply


def hostile_values(secret_dir: Path, quick: bool) -> list:
    """Values no visitor should be able to hurt the server with."""
    secret_json = secret_dir / "secret.json"
    values = [None, "", 10 ** 400, float("nan"), -1, True, [], "１２", "9" * 5000, "/etc/passwd",
              str(secret_json), "../../README.md", "tiny-ace-step", "a" * 100_000, ["３"], [10 ** 400]]
    if not quick:
        values += [" ", -10 ** 400, float("inf"), 2 ** 64, {}, "²", "٣", str(secret_dir / "secret.yaml"),
                   "~/.bashrc", "tiny-musicgen-melody", ["3", "x"], [float("nan")], "nan", "inf", "1e309", -0.0,
                   1.5, "3 (functional)", [3, 3, 3], list(range(1000)), "\x00",
                   "<script>alert(1)</script>", "C:\\Windows\\win.ini", "file:///etc/passwd", "org/../../x",
                   "a/b", "facebook/musicgen-small", ".", "vectors/../tada_core", [None], [[3]], {"a": 1},
                   "0x10", "1_000", " 3 ", 2 ** 31, -2 ** 63, 1e-320, "musicgen-organism"]
    return values


def bad_reply(text: str, secret_dir: Path) -> str | None:
    """Why an error message must not reach a visitor, or None if it is fine."""
    lowered = text.lower()
    if "internal error" in lowered or "traceback" in lowered or 'file "' in lowered:
        return "internal error"
    if SECRET in text or "root:x:" in text:
        return "file content"
    for path in (str(ROOT), str(secret_dir), tempfile.gettempdir() + "/", "/root", "/etc/", "/home/", "/usr/"):
        if path in text:
            return f"server path {path!r}"
    if "\n" in text.strip():
        return "more than one line"
    return None


def _clip(folder: Path):
    """A one-second tone as an uploaded file (the valid /edit request's audio)."""
    import numpy as np
    import soundfile as sf
    from gradio_client import handle_file

    path = folder / "clip.wav"
    sf.write(path, 0.3 * np.sin(2 * np.pi * 1250 * np.arange(16000) / 16000), 16000)
    return handle_file(str(path))


def run(url: str, *, quick: bool, timeout: float, endpoints: list[str] | None = None, log=print,
        requests: dict | None = None, keys: list[str] | None = None) -> dict:
    """``keys``: only these parameters are replaced by hostile values (default: every one)."""
    from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout

    from gradio_client import Client

    client = Client(url, verbose=False)
    secret_dir = Path(tempfile.mkdtemp(prefix="tada-fuzz-"))
    (secret_dir / "secret.json").write_text(f'{{"name": "{SECRET}", "positive": "{SECRET}"}}')
    (secret_dir / "secret.yaml").write_text(f"name: {SECRET}\n")
    counts = {"requests": 0, "answered": 0, "refused": 0, "failures": 0, "hangs": 0}
    failures = []
    pool = ThreadPoolExecutor(max_workers=1)
    requests = requests or VALID
    for name in endpoints or list(requests):
        valid = {k: (_clip(secret_dir) if v == "CLIP" else v) for k, v in requests[name].items()}
        for key in (k for k in valid if keys is None or k in keys):
            for value in hostile_values(secret_dir, quick):
                args = dict(valid, **{key: value})
                counts["requests"] += 1
                future = pool.submit(client.predict, *args.values(), api_name=name)
                try:
                    future.result(timeout=timeout)
                    counts["answered"] += 1
                    continue
                except FutureTimeout:
                    counts["hangs"] += 1
                    why, text = "no answer within the timeout", ""
                    pool = ThreadPoolExecutor(max_workers=1)   # leave the stuck call behind
                except Exception as e:   # noqa: BLE001 - a refusal is an exception of the client
                    text = str(e)
                    why = bad_reply(text, secret_dir)
                    if why is None:
                        counts["refused"] += 1
                        continue
                counts["failures"] += 1
                shown = repr(value)[:60]
                failures.append((name, key, shown, why, text[:200]))
                log(f"FAIL {name} {key}={shown}: {why}: {text[:200]!r}")
    counts["failure_list"] = failures
    return counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller set of hostile values")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take")
    p.add_argument("--url", default=None, help="an app already running (default: launch one on 127.0.0.1)")
    p.add_argument("--musicgen", action="store_true", help="the requests on musicgen-organism (its endpoints)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(ROOT))
        from tada_app import AppConfig, Handlers, build_app, launch

        port = _free_port()
        app = build_app(ORG, Handlers(AppConfig.from_env({"SPACE_ID": "fuzz/local"})))
        launch(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    try:
        counts = run(url, quick=args.quick, timeout=args.timeout, requests=MUSICGEN if args.musicgen else VALID)
    finally:
        if app is not None:
            app.close()
    print(f"{counts['requests']} requests in {time.perf_counter() - start:.0f} s: {counts['answered']} answered, "
          f"{counts['refused']} refused with a clean message, {counts['failures']} failures "
          f"({counts['hangs']} without an answer within {args.timeout:g} s)")
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
