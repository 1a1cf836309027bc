"""The store contract: every case in this folder that takes `store` runs on both
adapters, LMDB on a temporary directory and the in-memory one."""
import pytest

from chatsrv.proto import message_record
from chatsrv.store.lmdb import LmdbStore
from chatsrv.store.memory import MemoryStore


def make(kind, path, map_size=64 << 20):
    if kind == "lmdb":
        return LmdbStore(str(path), map_size, message_record)
    return MemoryStore(message_record)


@pytest.fixture(params=["lmdb", "memory"])
def store(request, tmp_path):
    s = make(request.param, tmp_path)
    yield s
    s.close()
