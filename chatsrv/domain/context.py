"""What every op handler of the domain is given: the settings, the store (reads), the
writer (writes), the local delivery of events (the router), the loop and the notifier,
with the two ways of writing (answer after the commit; await the commit) and the two
ways of answering (every reply counted by op and outcome, for chatsrv_ops_total)."""
import collections

from .. import proto as P
from ..proto import ProtocolError
from . import errors


def _ignore(result, error):
    pass


class Context:
    def __init__(self, cfg, store, writer, router, loop, notifier):
        self.cfg = cfg
        self.store = store
        self.writer = writer
        self.router = router
        self.loop = loop
        self.notifier = notifier
        self.outcomes = collections.Counter()    # (op, "ok" or error code) -> replies

    def reply(self, conn, req, result):
        self.outcomes[(req.op, "ok")] += 1
        conn.send(P.ok(req.rid, result))

    def fail(self, conn, op, rid, error):
        """Answers a failed request: a ProtocolError as it is, a refusal with its code,
        a storage failure with `unavailable`, anything else with `internal`."""
        e = errors.wire(rid, error)
        self.outcomes[(op, e.code)] += 1
        conn.send(P.err(rid, e.code, e.msg))

    def write(self, conn, req, op, done):
        """Submits a write op; done(result) runs on the loop after the commit. A failed
        write is answered (its refusal, `unavailable` or `internal`), and nothing
        acknowledged is lost."""

        def finish(result, error):
            if error is not None:
                self.fail(conn, req.op, req.rid, error)
                return
            try:
                done(result)
            except ProtocolError as e:
                self.fail(conn, req.op, req.rid, e)

        try:
            self.writer.submit(op, finish)
        except RuntimeError:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "server is shutting down") from None

    def write_quietly(self, op):
        """Submits a write op nobody waits for (a record kept for the operator); dropped
        while the server shuts down."""
        try:
            self.writer.submit(op, _ignore)
        except RuntimeError:
            pass

    def written(self, op):
        """A write op as an awaitable of its result, for ops that are coroutines."""
        fut = self.loop.create_future()

        def finish(result, error):
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(result)

        self.writer.submit(op, finish)
        return fut

    def members(self, conv):
        """The members of conv on the loop thread, from the router's table (which the
        core's send path reads too), loaded from the store on a miss; None if no such
        conversation."""
        members = self.router.members.get(conv)
        if members is None:
            with self.store.read() as r:
                members = r.members(conv)
            if members is not None:
                self.router.members[conv] = members
        return members

    def deliver(self, appended, exclude=None, members_after=None):
        """A committed message to its members' connections here, then to the notifier."""
        self.router.fanout(appended, exclude, members_after)
