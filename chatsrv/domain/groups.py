"""Groups: create, add, remove, leave, rename and info. The rules (size cap, ownership,
membership: chatsrv/domain/rules.py) are checked by the write ops below against what is
committed, inside the writer's transaction; the handlers add early answers."""
import dataclasses

from .. import convid
from .. import proto as P
from ..store import Conv, Membership, now_ms
from . import rules
from .errors import ConvExists, NoSuchUser, NotInGroup


class Groups:
    """`left(user, members)`: called when user has gone from a group whose members are now
    `members` (presence watches that no longer have a shared conversation end)."""

    def __init__(self, ctx, left):
        self.ctx = ctx
        self.left = left

    def handlers(self):
        return {"group_create": self.group_create, "group_add": self.group_add, "group_remove": self.group_remove,
                "group_leave": self.group_leave, "group_rename": self.group_rename, "group_info": self.group_info}

    def group_create(self, conn, req):
        user, cap = conn.user, self.ctx.cfg.max_group_members
        rules.group_size(len(set(req.members) | {user}), cap)
        conv = convid.new_group()

        def done(result):
            self.ctx.deliver(result.message, None, result.members)
            self.ctx.reply(conn, req, {"conv": conv})

        self.ctx.write(conn, req, CreateGroup(conv, user, req.name, req.members, cap), done)

    def _change(self, conn, req, action, users=(), name=None):
        def done(result):
            if result is not None:
                self.ctx.deliver(result.message, None, result.members)
                if action in ("remove", "leave"):
                    self.left(users[0] if action == "remove" else conn.user, result.members)
            self.ctx.reply(conn, req, {})

        self.ctx.write(conn, req, ChangeGroup(req.conv, conn.user, action, tuple(users), name,
                                              self.ctx.cfg.max_group_members), done)

    def group_add(self, conn, req):
        self._change(conn, req, "add", req.users)

    def group_remove(self, conn, req):
        self._change(conn, req, "remove", [req.user])

    def group_leave(self, conn, req):
        self._change(conn, req, "leave")

    def group_rename(self, conn, req):
        self._change(conn, req, "rename", name=req.name)

    def group_info(self, conn, req):
        with self.ctx.store.read() as r:
            rec = r.conv(req.conv)
        rules.group(rec, conn.user)
        self.ctx.reply(conn, req, {"conv": req.conv, "name": rec.name, "owner": rec.owner, "members": rec.members})


# --- write ops


@dataclasses.dataclass(frozen=True, slots=True)
class GroupChanged:
    message: object       # the system message (chatsrv.store.Appended)
    members: list         # the members after the change


def _users_exist(w, users):
    for u in users:
        account = w.user(u)
        if account is None or account.deleted:
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
        rules.group_size(len(members), self.cap)
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
        rules.group(rec, self.actor)
        members, owner, name, action, users = rec.members, rec.owner, rec.name, self.action, list(self.users)
        if action == "add":
            users = [u for u in users if u not in members]
            _users_exist(w, users)
            if not users:
                return None
            rules.group_size(len(members) + len(users), self.cap)
            after = recipients = members + users
        elif action == "remove":
            rules.owner(rec, self.actor)
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
