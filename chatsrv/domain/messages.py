"""Messages: send, ack, read, history and the conversation list, and their write ops
(the append itself is the store's compiled AppendMessage)."""
import dataclasses

from ..store import NotMember
from .errors import PastEnd


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
        m = w.membership(self.user, self.conv)
        if m is None or not m.active:
            raise NotMember()
        if self.seq > w.last_seq(self.conv):
            raise PastEnd("seq is past the conversation's last message")
        old = w.read_seq(self.user, self.conv)
        members = w.members(self.conv)
        if self.seq <= old:
            return ReadMarked(False, old, members)
        w.set_read(self.user, self.conv, self.seq)
        return ReadMarked(True, self.seq, members)
