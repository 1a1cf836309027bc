"""Messages: send, ack, read, history, the conversation list and the replay of a
device's backlog, and the write ops of ack and read (the append of a message is the
store's compiled AppendMessage). Handlers run once per request on the loop; nothing
here loops over recipients (the router does, in C)."""
import dataclasses

import orjson

from .. import convid
from .. import proto as P
from ..proto import ProtocolError
from ..store import AppendMessage, now_ms
from . import rules
from .errors import PastEnd

CONVS_RECENT = 2000     # inbox entries scanned to order `convs` exactly
REPLAY_CHUNK = 512      # backlog messages sent per loop iteration, so replay never stalls others


class Messages:
    """`send_done(conn, rid)` makes the callback that ends a send after its commit (the
    core's, shared with its fast path); `replay_into(conn, positions, records)` sends
    backlog entries to a connection (the core's, in C)."""

    def __init__(self, ctx, send_done, replay_into, notifier):
        self.ctx = ctx
        self.store = ctx.store
        self.send_done = send_done
        self.replay_into = replay_into
        self.notifier = notifier

    def handlers(self):
        return {"send": self.send, "ack": self.ack, "read": self.read, "history": self.history,
                "convs": self.convs}

    def send(self, conn, req):
        """The uncommon sends: a first message to someone, or one the core's fast path
        declined (it takes a well-formed send to a known conversation itself)."""
        user = conn.user
        new_conv = None
        if req.to is not None:
            if req.to == user:
                raise ProtocolError(req.rid, P.BAD_REQUEST, "cannot send to yourself")
            conv = convid.direct(user, req.to)
            members = self.ctx.members(conv)
            if members is None or user not in members:
                with self.store.read() as r:
                    peer = r.user(req.to)
                if peer is None or peer.deleted:     # a deleted account's direct conv has no members
                    raise ProtocolError(req.rid, P.NOT_FOUND, "no such user")
                if members is None:
                    new_conv = tuple(sorted((user, req.to)))
        else:
            conv = req.conv
            # an early answer; the store checks again against what is committed
            rules.member(self.ctx.members(conv), user)
        try:
            self.ctx.writer.submit(AppendMessage(user, conv, req.body, req.cid, new_conv),
                                   self.send_done(conn, req.rid))
        except RuntimeError:
            raise ProtocolError(req.rid, P.UNAVAILABLE, "server is shutting down") from None

    def replay(self, conn):
        """Sends the device's backlog after conn.last_sent in chunks, then `synced`; live
        fan-out skips the connection until then (it is `replaying`), and the last chunk
        is read up to the newest commit, so nothing falls between."""
        if conn.closing:
            return
        if conn.paused:
            conn.resume_cb = lambda: self.replay(conn)
            return
        with self.store.read() as r:
            positions, records = r.inbox_after(conn.user, conn.last_sent, REPLAY_CHUNK)
            self.replay_into(conn, positions, records)
            if len(positions) == REPLAY_CHUNK:
                self.ctx.loop.call_soon(self.replay, conn)
                return
            head = r.inbox_head(conn.user)
        conn.replaying = False
        conn.send(P.event("synced", inbox=head))

    def ack(self, conn, req):
        user, device = conn.user, conn.device
        with self.store.read() as r:
            head = r.inbox_head(user)
        if req.upto > head:
            raise ProtocolError(req.rid, P.BAD_REQUEST, f"upto is past the inbox head ({head})")

        def done(result):
            self.ctx.reply(conn, req, {})
            for conv, seq in result.delivered:
                self.ctx.router.broadcast((convid.peer(conv, user),),
                                          P.event("delivered", conv=conv, user=user, seq=seq))

        self.ctx.write(conn, req, Ack(user, device, req.upto), done)

    def read(self, conn, req):
        user, conv, seq = conn.user, req.conv, req.seq

        def done(result):
            self.ctx.reply(conn, req, {})
            if result.moved:
                self.ctx.router.broadcast(result.members, P.event("read", conv=conv, user=user, seq=result.seq))
                # the user's other devices may clear their notifications
                self.notifier.on_read(user, conn.device, conv, result.seq)

        self.ctx.write(conn, req, MarkRead(user, conv, seq), done)

    def history(self, conn, req):
        with self.store.read() as r:
            before = req.before
            m = r.membership(conn.user, req.conv) if req.include_left else None
            if m is not None and not m.active:
                # a former member reads what was theirs: up to the message of their departure
                before = min(before, m.left + 1) if before is not None else m.left + 1
            else:
                m = rules.active(r.membership(conn.user, req.conv))
            records = r.history(req.conv, before, req.limit, since=m.joined)
        self.ctx.outcomes[(req.op, "ok")] += 1
        conn.send(P.history_reply(req.rid, records))

    def convs(self, conn, req):
        user = conn.user
        out = []
        with self.store.read() as r:
            # Recency is exact by inbox position for conversations active in the newest
            # entries (timestamps tie within a millisecond); older ones go by timestamp.
            head = r.inbox_head(user)
            recent = r.inbox_span(user, max(0, head - CONVS_RECENT), head, False)
            now = now_ms()
            for conv, m in r.memberships(user):
                left = m.left
                if left and not req.include_left:
                    continue
                rec = r.conv(conv)
                if left:
                    last_seq, last = left, r.message(conv, left)
                else:
                    last_seq, last = r.last_message(conv)
                read = r.read_seq(user, conv)
                item = {"conv": conv, "kind": rec.kind}
                last_obj = orjson.loads(b"{" + last) if last is not None else None
                if rec.kind == "direct":
                    item["peer"] = convid.peer(conv, user)
                elif left:
                    # the name they knew: renames after their departure are not theirs to see
                    item["name"] = (last_obj or {}).get("sys", {}).get("name") or rec.name
                    item["left"] = left
                else:
                    item["name"] = rec.name
                item.update(last_seq=last_seq, read_seq=min(read, last_seq), unread=max(0, last_seq - read),
                            last=last_obj)
                muted = r.muted_until(user, conv)
                if muted > now:
                    item["muted_until"] = muted
                pos = recent.get(conv, (0, 0))[1]
                out.append(((pos, last_obj["ts"] if last_obj else rec.ts), item))
        out.sort(key=lambda p: p[0], reverse=True)
        self.ctx.reply(conn, req, {"convs": [item for _, item in out]})


# --- write ops


@dataclasses.dataclass(frozen=True, slots=True)
class Acked:
    cursor: int           # the device's cursor after the ack
    delivered: list       # [(conv, seq)] of direct conversations whose delivered mark moved


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    """Moves the device's cursor forward to upto (never back), and the user's delivered
    mark of each direct conversation the acked span holds."""
    user: str
    device: str
    upto: int

    def __call__(self, w):
        cur = w.cursor(self.user, self.device) or 0
        if self.upto <= cur:
            return Acked(cur, [])
        w.set_cursor(self.user, self.device, self.upto)
        moved = []
        for conv, (seq, _) in w.inbox_span(self.user, cur, self.upto, True).items():
            if w.delivered(self.user, conv) < seq:
                w.set_delivered(self.user, conv, seq)
                moved.append((conv, seq))
        return Acked(self.upto, moved)


@dataclasses.dataclass(frozen=True, slots=True)
class ReadMarked:
    moved: bool           # the marker moved forward
    seq: int              # the marker after the op
    members: list         # the conversation's members (who hear of the move)


@dataclasses.dataclass(frozen=True, slots=True)
class MarkRead:
    """Moves user's read marker of conv to max(marker, seq); a member only, and never
    past the conversation's last message."""
    user: str
    conv: str
    seq: int

    def __call__(self, w):
        rules.active(w.membership(self.user, self.conv))
        if self.seq > w.last_seq(self.conv):
            raise PastEnd("seq is past the conversation's last message")
        old = w.read_seq(self.user, self.conv)
        members = w.members(self.conv)
        if self.seq <= old:
            return ReadMarked(False, old, members)
        w.set_read(self.user, self.conv, self.seq)
        return ReadMarked(True, self.seq, members)
