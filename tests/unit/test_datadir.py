"""The data directory lock without a server: exclusive, reported to tools, gone on release."""
import os

import pytest

from chatsrv import datadir


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    first = datadir.Lock(str(tmp_path)).acquire()
    assert datadir.in_use(str(tmp_path)) == os.getpid()
    with pytest.raises(datadir.InUse) as e:
        datadir.Lock(str(tmp_path)).acquire()
    assert e.value.pid == os.getpid() and str(tmp_path) in str(e.value)
    first.release()
    assert datadir.in_use(str(tmp_path)) == 0
    datadir.Lock(str(tmp_path)).acquire().release()


def test_directory_without_a_lock_file_is_free(tmp_path):
    assert datadir.in_use(str(tmp_path)) == 0


def test_require_database(tmp_path):
    with pytest.raises(datadir.NoDatabase):
        datadir.require_database(str(tmp_path))
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "data.mdb").write_bytes(b"")
    datadir.require_database(str(tmp_path))
