"""``python -m engine``: the ``stratagem`` command without the console script."""

from __future__ import annotations

from engine.cli import main

if __name__ == "__main__":
    main()
