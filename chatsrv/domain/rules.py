"""The rules of conversations, in one place: who is a member, what a group allows. Each
raises a typed refusal (chatsrv/store NotMember, chatsrv/domain/errors.py) and is used
both by the op handlers on the loop (an early answer from cached state) and by the write
ops in the writer thread (the answer that counts, against what is committed)."""
from .. import convid
from ..store import NotMember
from .errors import GroupFull, NotAGroup, NotOwner


def member(members, user):
    """`members`: a conversation's member list, None for no such conversation."""
    if members is None or user not in members:
        raise NotMember()


def active(m):
    """`m`: a Membership or None; returns it when it is a current one."""
    if m is None or not m.active:
        raise NotMember()
    return m


def group(conv, user):
    """`conv`: a Conv or None; user must be a member and it must be a group."""
    member(conv.members if conv is not None else None, user)
    if conv.kind != "group":
        raise NotAGroup()


def group_size(n, cap):
    if n > cap:
        raise GroupFull(cap)


def owner(conv, user):
    """Only the owner removes members."""
    if user != conv.owner:
        raise NotOwner()


def shares_conv(r, user, other):
    """True if the two users are members of one conversation (Reader r): only then may one
    watch the other's presence."""
    if r.membership(user, convid.direct(user, other)) is not None:
        return True
    for conv, m in r.memberships(user):
        if m.active and convid.is_group(conv):
            o = r.membership(other, conv)
            if o is not None and o.active:
                return True
    return False
