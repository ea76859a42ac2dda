"""Run the Rapport server under pyinstrument (``python -m bench --profile``).

Profiling starts on SIGUSR2 (after the set-up, so only the measured load is profiled) and
is written on SIGUSR1, after which the process exits: it does not depend on a clean
shutdown. Settings come from ``RAPPORT_*`` like ``rapport serve``.

    python -m bench.profiled_server --port 8000 --out profile.pyisession
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from types import FrameType

import uvicorn
from pyinstrument import Profiler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    profiler = Profiler(interval=0.0005, async_mode="disabled")

    def dump(_signum: int, _frame: FrameType | None) -> None:
        session = profiler.stop()
        session.save(str(args.out))
        os._exit(0)

    def begin(_signum: int, _frame: FrameType | None) -> None:
        if not profiler.is_running:
            profiler.start()

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, begin)
    uvicorn.run(
        "rapport_server.asgi:app",
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
