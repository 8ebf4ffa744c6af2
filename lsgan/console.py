"""What lsgan shows a person at the console: a copy of it in the run's ``run.log``, and a plain progress line
for the long steps that have no Lightning loop (generating samples, feature passes, reference statistics).

``run_log(path)`` copies everything written to stdout and stderr (``[lsgan]`` lines, progress lines, warnings,
logging records) into ``path`` while it is active, one line per line: a progress bar redrawn in place with
carriage returns is logged as the line it last showed, terminal colour codes are dropped.

``Progress(what, total)`` prints ``[lsgan] <what>: <done>/<total> (<pct>%, <rate>/s)`` to stderr at most
every ``Progress.every_s`` seconds (and once at the end when the step took longer than that), so a short
step prints nothing and a long one a line every few seconds. ``LSGAN_PROGRESS=0`` silences it.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _LogLines:
    """Text written in pieces → whole lines appended to a file (the last ``\\r``-separated frame of each)."""

    def __init__(self, path: Path):
        self.fh = open(path, "a", encoding="utf-8", errors="replace")
        self.pending = ""

    @staticmethod
    def _shown(text: str) -> str:
        frames = [f for f in text.split("\r") if f]
        return frames[-1] if frames else ""  # only the frame a terminal would still show

    def write(self, text: str) -> None:
        *lines, rest = (self.pending + text).split("\n")
        self.pending = self._shown(rest)
        for line in lines:
            self.fh.write(_ANSI.sub("", self._shown(line)) + "\n")
        if lines:
            self.fh.flush()

    def close(self) -> None:
        tail = _ANSI.sub("", self.pending)
        if tail.strip():
            self.fh.write(tail + "\n")
        self.pending = ""
        self.fh.close()


class _Tee(io.TextIOBase):
    """A console stream that also writes to the run's log; everything else (isatty, fileno, encoding) is the
    console's, so progress bars and terminal checks behave as without it."""

    def __init__(self, stream, log: _LogLines):
        self.stream, self.log = stream, log

    def write(self, text) -> int:
        n = self.stream.write(text)
        try:
            self.log.write(str(text))
        except (OSError, ValueError):  # the log's disk filled or it was closed: the console goes on
            pass
        return len(text) if n is None else n

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self.stream, "errors", "strict")

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _stream_handlers():
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers if isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler)]


@contextlib.contextmanager
def run_log(path, errors: tuple = ()) -> Iterator[None]:
    """Copy the console (stdout, stderr, and logging handlers that write to them) into ``path`` (appended)
    while active. An exception of a type in ``errors`` (the one-line errors a command line prints itself) is
    logged as ``error: <message>``; any other as its type and message."""
    log = _LogLines(Path(path))
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
    moved = []
    for h in _stream_handlers():  # handlers made before (Hydra's console, Lightning's) hold the bare streams
        if h.stream is out or h.stream is err:
            moved.append((h, h.stream))
            h.setStream(sys.stdout if h.stream is out else sys.stderr)
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, errors):
            log.write(f"error: {' '.join(str(exc).split())}\n")
        elif not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            log.write(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:500]}\n")
        raise
    finally:
        for h, stream in moved:
            h.setStream(stream)
        sys.stdout, sys.stderr = out, err
        log.close()


# --------------------------------------------------------------------------- progress of long steps
class Progress:
    """Count work done and print a plain progress line now and then (see the module's docstring).

    ``with Progress("generating samples", n, unit="images") as p: ... p.update(len(batch))``."""

    every_s = 10.0

    def __init__(self, what: str, total: Optional[int], unit: str = "", stream=None):
        self.what, self.total, self.unit = what, (None if total is None else int(total)), unit
        self.stream = stream
        self.done = 0
        self.quiet = os.environ.get("LSGAN_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off")
        self.start = self.last = time.perf_counter()
        self.printed = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if now - self.last >= self.every_s and (self.total is None or self.done < self.total):  # the end: close()
            self.last = now
            self._print(now)

    def close(self) -> None:
        """The final line, when the step took long enough to have shown progress."""
        now = time.perf_counter()
        if self.printed or now - self.start >= self.every_s:
            self._print(now, final=True)

    def line(self, now: Optional[float] = None, final: bool = False) -> str:
        elapsed = (now or time.perf_counter()) - self.start
        unit = f" {self.unit}" if self.unit else ""
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        pct = f"{100 * self.done / self.total:.0f}%, " if self.total else ""
        rate = self.done / max(elapsed, 1e-9)
        tail = f"done in {elapsed:.0f} s" if final else f"{rate:.3g}{unit}/s"
        return f"[lsgan] {self.what}: {count}{unit} ({pct}{tail})"

    def _print(self, now: float, final: bool = False) -> None:
        if self.quiet:
            return
        self.printed = True
        print(self.line(now, final), file=self.stream or sys.stderr, flush=True)

