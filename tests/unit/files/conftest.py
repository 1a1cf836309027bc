"""`ix`: a FileIndex for the catalog's tests, one open write transaction of the
store's in-memory adapter (which tests/unit/store/test_files.py holds to the same
contract as LMDB)."""
import pytest

from chatsrv.proto import message_record
from chatsrv.store.memory import MemoryStore


@pytest.fixture
def ix():
    with MemoryStore(message_record).write() as w:
        yield w
