"""Fail when a pinned requirement is missing from its lock (someone edited requirements*.txt and did not run
`make lock`), so an install never silently leaves a new dependency out. Standard library only: it runs
before the virtualenv exists."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path, *, follow: bool = True) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if follow and line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif m := PIN.match(line):
            found[_name(m.group(1))] = m.group(2)
    return found


def main() -> int:
    problems = []
    for source, lock in (("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")):
        if not (ROOT / lock).exists():
            problems.append(f"{lock} is missing")
            continue
        locked = pins(ROOT / lock, follow=False)
        for name, version in pins(ROOT / source).items():
            if locked.get(name) != version:
                problems.append(f"{source}: {name}=={version} is not in {lock} (has {locked.get(name)})")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("Run `make lock` to regenerate the locks.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
