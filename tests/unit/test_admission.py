"""Admission: the upgrade-rate bucket and its retry hint."""
import re

from chatsrv.admission import Admission


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def hint_ms(reason):
    m = re.fullmatch(r"server busy: retry after (\d+) ms", reason)
    assert m, reason
    return int(m.group(1))


def test_off_when_rate_is_zero():
    a = Admission(0, 10)
    assert all(a.admit() is None for _ in range(100000))


def test_burst_then_rate():
    clock = Clock()
    a = Admission(rate=64, burst=50, clock=clock)
    assert [a.admit() for _ in range(50)] == [None] * 50
    assert a.admit() is not None
    clock.t += 0.25                        # 16 tokens back
    got = [a.admit() for _ in range(20)]
    assert got[:16] == [None] * 16 and all(r is not None for r in got[16:])
    assert a.refused == 5


def test_hint_grows_with_the_excess_and_fades():
    clock = Clock()
    a = Admission(rate=1000, burst=1, clock=clock)
    assert a.admit() is None
    first = hint_ms(a.admit())
    hints = [hint_ms(a.admit()) for _ in range(5000)]
    assert first == 1 and hints[-1] >= 4000        # 5000 waiting at 1000/s: about 5 s
    assert hints == sorted(hints)
    clock.t += 10                                  # the storm is over: a full bucket, a short hint
    assert a.admit() is None
    assert hint_ms(a.admit()) <= 2
