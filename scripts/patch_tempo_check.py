"""What the A/B patching tab's default prompts do on the organism: librosa's tempo of A, B and A with the tempo
layer patched from B, per seed, as the app computes them (``Handlers.patch``).

    python scripts/patch_tempo_check.py [--seeds 0 1 2 3 4 5] [--layer 3]

Prints one row per seed and how often the patched clip's tempo lands on B's (within 4%), on half or double of
B's (the beat tracker's octave), or stays at A's.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from tada_app import AppConfig, Handlers

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--layer", type=int, default=3, help="tempo's functional layer on the organism")
    p.add_argument("--a", default="a slow sad waltz with piano")
    p.add_argument("--b", default="a fast happy march with drums")
    args = p.parse_args()
    h = Handlers(AppConfig.from_env({}))
    verdicts = {"B's tempo": 0, "B's tempo, octave off": 0, "A's tempo": 0, "elsewhere": 0}
    print(f"A = {args.a!r}, B = {args.b!r}, layer {args.layer} patched from B; 4 s, 20 steps")
    print("| seed | A (BPM) | B (BPM) | A with layer from B (BPM) | lands on |\n|---|---|---|---|---|")
    for seed in args.seeds:
        *_, table = h.patch("tada-organism", args.a, args.b, [args.layer], seed, 4.0, 20)
        _, a, b, ab = next(row for row in table if row[0].startswith("tempo"))

        def near(x, y):
            return abs(x - y) <= 0.04 * y

        verdict = ("B's tempo" if near(ab, b) else "B's tempo, octave off" if near(ab, b / 2) or near(ab, 2 * b)
                   else "A's tempo" if near(ab, a) else "elsewhere")
        verdicts[verdict] += 1
        print(f"| {seed} | {a:.1f} | {b:.1f} | {ab:.1f} | {verdict} |")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in verdicts.items()) + f" (of {len(args.seeds)} seeds)")


if __name__ == "__main__":
    main()
