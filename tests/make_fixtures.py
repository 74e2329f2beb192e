#!/usr/bin/python3
"""Regenerates every committed fixture in tests/fixtures/ from PyTorch (Debian's python3-torch).

Each module's generator lives in tests/fixtures_<module>.py and exposes `generate()`; run all
(`make fixtures`) or some (`tests/make_fixtures.py nn heads`). CI never runs this: the small
files it writes are committed."""
import importlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    here = os.path.dirname(os.path.abspath(__file__))
    modules = sorted(f[len("fixtures_"):-3] for f in os.listdir(here)
                     if f.startswith("fixtures_") and f.endswith(".py"))
    wanted = argv or modules
    for name in wanted:
        if name not in modules:
            sys.exit(f"make_fixtures: no tests/fixtures_{name}.py (have: {', '.join(modules)})")
        print(f"fixtures: {name}", flush=True)
        importlib.import_module(f"fixtures_{name}").generate()


if __name__ == "__main__":
    main(sys.argv[1:])
