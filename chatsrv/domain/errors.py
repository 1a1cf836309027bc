"""The domain's refusals, and the one map from every refusal or store failure to the
protocol error a client gets. Nothing else turns a rule's outcome into a wire code."""
from .. import proto as P
from ..proto import ProtocolError
from ..store import NotMember, Refusal, Unavailable


class Refused(Refusal):
    """A rule of the domain said no. `code` is the protocol error it is answered with."""

    code = P.BAD_REQUEST

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


class NoSuchUser(Refused):
    code = P.NOT_FOUND

    def __init__(self, user):
        super().__init__(f"no such user: {user}")


class GroupFull(Refused):
    code = P.TOO_LARGE

    def __init__(self, cap):
        super().__init__(f"a group has at most {cap} members")


class ConvExists(Refused):
    code = P.CONFLICT

    def __init__(self):
        super().__init__("conversation id exists")


class NotAGroup(Refused):
    def __init__(self):
        super().__init__("not a group")


class NotOwner(Refused):
    code = P.FORBIDDEN

    def __init__(self):
        super().__init__("only the owner may remove members")


class NotInGroup(Refused):
    code = P.NOT_FOUND

    def __init__(self):
        super().__init__("not a member of this group")


class PastEnd(Refused):
    def __init__(self, what):
        super().__init__(what)


NOT_MEMBER = "not a member of this conversation"
UNAVAILABLE = "storage is full or failing; try again later"


def not_member(rid):
    return ProtocolError(rid, P.FORBIDDEN, NOT_MEMBER)


def wire(rid, error):
    """The ProtocolError answering a failed write: a refusal with its code, a storage
    failure with `unavailable`, anything else (a bug) with `internal`."""
    if isinstance(error, ProtocolError):
        return error
    if isinstance(error, Refused):
        return ProtocolError(rid, error.code, error.msg)
    if isinstance(error, NotMember):
        return not_member(rid)
    if isinstance(error, (Unavailable, OSError)):
        return ProtocolError(rid, P.UNAVAILABLE, UNAVAILABLE)
    return ProtocolError(rid, P.INTERNAL, "internal error")
