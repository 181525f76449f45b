"""trajforge's command line: `main` turns user errors into one line and an exit code, and Ctrl-C and SIGTERM
into a clean stop; the parser and the commands are the modules beside it (parser.py lists them)."""

import logging
import os
import signal
import sys

from pipeline.cli.parser import build_parser
from pipeline.errors import UserError

__all__ = ["build_parser", "main"]


class _Terminated:
    """SIGTERM (what Slurm and most schedulers send at a time limit) is handled as Ctrl-C is: the handler
    raises SIGINT in this process, so the stages unwind the same way (finished shards kept, the local server
    and sandboxes stopped), and `main` answers 143 instead of 130."""

    received = False

    @classmethod
    def handle(cls, signum, frame) -> None:
        cls.received = True
        os.kill(os.getpid(), signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)  # libraries: warnings only
    logging.getLogger("trajforge").setLevel(logging.INFO)
    previous = signal.signal(signal.SIGTERM, _Terminated.handle)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        what = "terminated (SIGTERM)" if _Terminated.received else "interrupted"
        print(f"{what}: finished shards are kept; re-run the same command to resume", file=sys.stderr)
        return 143 if _Terminated.received else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
