"""Helpers for tests that write through the store: a real Writer over any adapter."""
import asyncio

from chatsrv.store import Writer


async def run_ops(store, ops, max_batch=1024):
    """Submits every op at once to a real Writer and returns ([(result, error)], writer)
    after their commits."""
    loop = asyncio.get_running_loop()
    w = Writer(store, loop, max_batch=max_batch)
    futs = []
    for op in ops:
        fut = loop.create_future()
        w.submit(op, lambda r, e, fut=fut: fut.set_result((r, e)))
        futs.append(fut)
    w.start()
    out = await asyncio.gather(*futs)
    w.stop()
    return out, w


class Op:
    """A write op from a function of the WriteTxn, for cases that exercise primitives."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, w):
        return self.fn(w)
