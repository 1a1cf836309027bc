"""Attachments: the owner of their bytes. Content-addressed blobs under
DATA/files/ (blobs), images verified, cleaned and thumbnailed (images), uploads in
flight and their limits (uploads), records and reference counts (catalog, persisted
by the store through its FileIndex), signed download URLs (links) and download
headers (http). Protocol: docs/protocol.md §13.

Knows nothing of connections, conversations or the database layout: callers pass
the connection as an opaque owner and a membership test as a function.
"""
import os

from .blobs import Blobs
from .catalog import Catalog, FileIndex, FileRecord
from .errors import FileError
from .links import Links, load_key
from .uploads import Limits, Upload, Uploads, complete

FILES_DIR = "files"


def blob_root(data_dir):
    return os.path.join(data_dir, FILES_DIR)


__all__ = ["Blobs", "Catalog", "FileError", "FileIndex", "FileRecord", "Limits", "Links", "Upload",
           "Uploads", "blob_root", "complete", "load_key"]
