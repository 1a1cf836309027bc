"""Attachments: the owner of their bytes. Content-addressed blobs under
DATA/files/ (blobs), images verified, cleaned and thumbnailed (images), uploads in
flight and their limits (uploads), records and reference counts (catalog, persisted
by the store as its FileIndex), signed download URLs (links), download headers
(http), and `Files` (service), what the server calls. Protocol: docs/protocol.md §13.

Knows nothing of connections, conversations or the database layout: callers pass
the connection as an opaque owner and a membership test as a function. Import the
modules themselves: this package imports nothing, so that the store can use the
catalog's record without loading Pillow.
"""
import os

FILES_DIR = "files"


def blob_root(data_dir):
    return os.path.join(data_dir, FILES_DIR)
