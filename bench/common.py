"""Shared settings of one benchmark run and the progress display."""
import sys
import time

from tqdm import tqdm

BODY_BYTES = 200          # chat message body; a `send` frame is about 290 B, a `msg` event about 330 B
BARE_BYTES = 300          # bare-server frames: the same size as the chat frames


class Progress:
    """One bar per measured phase (time-based), written to stderr."""

    def __init__(self, enabled=True):
        # bars only on a terminal; in a log (CI, make bench > file) only the phase names
        self.enabled = enabled and sys.stderr.isatty()
        self.quiet = not enabled

    def phase(self, name):
        if not self.enabled:
            if not self.quiet:
                print(f"  {name}", file=sys.stderr, flush=True)
            return _NoBar()
        return _Bar(name)

    def note(self, text):
        if self.enabled:
            tqdm.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)


class _NoBar:
    def __call__(self, frac):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class _Bar:
    def __init__(self, name):
        self.bar = tqdm(total=100, desc=f"{name:<28}", leave=False, file=sys.stderr,
                        bar_format="{desc} {bar} {percentage:3.0f}% {elapsed}", mininterval=0.2)
        self.last = 0

    def __call__(self, frac):
        n = int(frac * 100)
        if n > self.last:
            self.bar.update(n - self.last)
            self.last = n

    def close(self):
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def now_stamp():
    return time.strftime("%Y%m%d-%H%M%S")
