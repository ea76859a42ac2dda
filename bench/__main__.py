"""Entry point: ``python -m bench [--quick] [--only NAME ...] [--db sqlite,postgres]``."""

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
