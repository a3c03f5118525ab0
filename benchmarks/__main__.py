"""``python -m benchmarks``: run every benchmark module and print its table."""

from __future__ import annotations

import importlib
import sys

MODULES = ["benchmarks.geometry", "benchmarks.hub", "benchmarks.bulk", "benchmarks.formats",
           "benchmarks.logins", "benchmarks.ai", "benchmarks.ai_detection", "benchmarks.offload",
           "benchmarks.uploads", "benchmarks.browser"]


def main(argv: list[str]) -> int:
    wanted = [f"benchmarks.{a}" for a in argv] or MODULES
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"{name}: not available ({exc})")
            continue
        print(f"\n# {name}\n", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
