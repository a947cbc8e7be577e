"""`cunping player`: the kiosk player (built in the screen-side issue)."""

from __future__ import annotations

import sys


def main() -> None:
    print("The Cunping player is not built yet: see the screen-side issue.", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
