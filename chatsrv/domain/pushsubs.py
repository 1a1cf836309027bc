"""Push subscriptions and mutes as ops: push_key, push_subscribe, push_unsubscribe and
mute, and their write ops. The sending of pushes is chatsrv/push."""
import dataclasses

from ..store import PushSub, now_ms


@dataclasses.dataclass(frozen=True, slots=True)
class PutPushSub:
    """The device's subscription (one per device: a new one replaces the old)."""
    user: str
    device: str
    endpoint: str
    keys: dict

    def __call__(self, w):
        w.put_push_subscription(self.user, self.device,
                                PushSub(self.endpoint, self.keys["p256dh"], self.keys["auth"], now_ms()))


@dataclasses.dataclass(frozen=True, slots=True)
class DeletePushSub:
    """Deletes the device's subscription; with `endpoint`, only if it is still that one
    (a newer subscription that replaced it stays) -> True if one was deleted."""
    user: str
    device: str
    endpoint: str = None

    def __call__(self, w):
        if self.endpoint is not None:
            sub = w.push_subscription(self.user, self.device)
            if sub is None or sub.endpoint != self.endpoint:
                return False
        return w.delete_push_subscription(self.user, self.device)


@dataclasses.dataclass(frozen=True, slots=True)
class SetMute:
    """No pushes for conv until `until` (ms since the epoch); 0 unmutes."""
    user: str
    conv: str
    until: int

    def __call__(self, w):
        w.set_mute(self.user, self.conv, self.until)
