"""Groups: create, add, remove, leave, rename and info, with their rules (size cap,
ownership, membership) in one place: the write ops below, which check them against
what is committed, inside the writer's transaction."""
import dataclasses

from ..store import Conv, Membership, NotMember, now_ms
from .errors import ConvExists, GroupFull, NoSuchUser, NotAGroup, NotInGroup, NotOwner


@dataclasses.dataclass(frozen=True, slots=True)
class GroupChanged:
    message: object       # the system message (chatsrv.store.Appended)
    members: list         # the members after the change


def _users_exist(w, users):
    for u in users:
        if w.user(u) is None:
            raise NoSuchUser(u)


@dataclasses.dataclass(frozen=True, slots=True)
class CreateGroup:
    """A group with its creator as owner and first member, announced by a `create`
    system message; every member's visible history starts there."""
    conv: str
    owner: str
    name: str
    members: list
    cap: int

    def __call__(self, w):
        members = list(dict.fromkeys([self.owner] + self.members))
        _users_exist(w, members[1:])
        if len(members) > self.cap:
            raise GroupFull(self.cap)
        if not w.create_conv(self.conv, Conv("group", members, self.name, self.owner, now_ms())):
            raise ConvExists()
        msg = w.append_message(self.owner, self.conv, None, None, None,
                               {"action": "create", "users": members, "name": self.name}, members)
        for m in members:
            w.set_membership(m, self.conv, Membership(msg.seq))
        return GroupChanged(msg, members)


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeGroup:
    """add, remove, leave or rename, stored as a system message to the members before
    the change (and the added ones) -> GroupChanged, or None when nothing changes.
    Any member may add or rename, only the owner removes; when the owner goes, the
    longest-standing member owns the group."""
    conv: str
    actor: str
    action: str
    users: tuple = ()
    name: str = None
    cap: int = 0

    def __call__(self, w):
        rec = w.conv(self.conv)
        if rec is None or self.actor not in rec.members:
            raise NotMember()
        if rec.kind != "group":
            raise NotAGroup()
        members, owner, name, action, users = rec.members, rec.owner, rec.name, self.action, list(self.users)
        if action == "add":
            users = [u for u in users if u not in members]
            _users_exist(w, users)
            if not users:
                return None
            if len(members) + len(users) > self.cap:
                raise GroupFull(self.cap)
            after = recipients = members + users
        elif action == "remove":
            if self.actor != owner:
                raise NotOwner()
            if users[0] not in members:
                raise NotInGroup()
            after = [m for m in members if m not in users]
            recipients = members
        elif action == "leave":
            users = [self.actor]
            after = [m for m in members if m != self.actor]
            recipients = members
        else:  # rename
            name = self.name
            users = []
            after = recipients = members
        sys = {"action": action, "users": users, "name": name}
        if action in ("remove", "leave") and owner not in after:
            owner = sys["owner"] = after[0] if after else None     # named in the hand-over message
        msg = w.append_message(self.actor, self.conv, None, None, None, sys, recipients)
        seq = msg.seq
        w.put_conv(self.conv, Conv("group", after, name, owner, rec.ts))
        for u in users:
            if action == "add":
                w.set_membership(u, self.conv, Membership(seq))
                # what came before joining is not theirs to read: it is not unread either
                if w.read_seq(u, self.conv) < seq - 1:
                    w.set_read(u, self.conv, seq - 1)
            else:
                old = w.membership(u, self.conv)
                w.set_membership(u, self.conv, Membership(old.joined if old else 1, seq))
        return GroupChanged(msg, after)
