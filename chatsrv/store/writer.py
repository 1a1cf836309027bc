"""The single writer: one thread applies write ops in arrival order, in batches, one
commit per batch (group commit), over any store adapter.

A job's callback runs on the loop only after the commit that holds it has returned
(synced unless the bench-only unsafe mode is on): nothing is acknowledged before it
is recoverable. Must never run loop-side code in its thread or know a key layout.
"""
import logging
import threading
import time

from . import Refusal, Unavailable
from ..metrics import Hist

log = logging.getLogger("chatsrv.store")


class Job:
    """One write: op(w) runs in the writer thread inside the batch's transaction;
    done(result, error) runs on the loop after the commit."""

    __slots__ = ("op", "done", "result", "error")

    def __init__(self, op, done):
        self.op = op
        self.done = done
        self.result = None
        self.error = None


class Writer:
    def __init__(self, store, loop, max_batch=1024):
        self.store = store
        self.loop = loop
        self.max_batch = max_batch
        self._queue = []
        self._cv = threading.Condition()
        self._stopping = False
        self._waiting = False
        self._full_logged = 0.0      # when "storage is full or failing" was last logged
        self.n_commits = 0
        self.n_jobs = 0
        self.n_failed = 0
        self.commit_seconds = 0.0
        self.commit_latency = Hist()
        self._thread = threading.Thread(target=self._run, name="chatsrv-writer", daemon=True)

    def start(self):
        self._thread.start()

    def submit(self, op, done):
        """Queues op; raises RuntimeError once the writer is stopping."""
        if self._stopping:
            raise RuntimeError("writer is stopped")
        self._queue.append(Job(op, done))
        # Only a sleeping writer needs the lock and a wake-up; one that is committing
        # takes whatever is queued when it comes back (that is the group commit).
        if self._waiting:
            with self._cv:
                self._cv.notify()

    def queued(self):
        return len(self._queue)

    def stop(self):
        """Commits what is queued, then ends the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join()

    def _run(self):
        while True:
            with self._cv:
                # _waiting is set before the queue is looked at, so a submit either is
                # seen here or sees _waiting and notifies: no wake-up is lost
                self._waiting = True
                while not self._queue and not self._stopping:
                    self._cv.wait()
                self._waiting = False
                if not self._queue:
                    return
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
            self._apply(batch)
            self.loop.call_soon_threadsafe(self._finish, batch)

    def _apply(self, batch):
        t0 = time.perf_counter()
        store = self.store
        try:
            with store.write() as w:
                for job in batch:
                    try:
                        job.result = job.op(w)
                    except Refusal as e:
                        job.error = e
        except Exception:
            # One bad job (a full map, say) must not fail the others: redo each alone.
            for job in batch:
                job.result = job.error = None
                try:
                    with store.write() as w:
                        job.result = job.op(w)
                except Refusal as e:
                    job.error = e
                except Exception as e:
                    job.result = None
                    self.n_failed += 1
                    if store.unavailable(e):
                        self._storage_full(e)
                        job.error = Unavailable(str(e))
                    else:
                        log.exception("write failed")
                        job.error = e
        self.n_commits += 1
        self.n_jobs += len(batch)
        took = time.perf_counter() - t0
        self.commit_seconds += took
        self.commit_latency.observe(took)

    def _storage_full(self, e):
        """One line every 10 s at most: a full disk fails every write, and a line for each
        would fill what is left of it with the log."""
        now = time.monotonic()
        if now - self._full_logged >= 10.0:
            self._full_logged = now
            log.warning("writes fail, answered unavailable (nothing acknowledged is lost): %s", e)

    @staticmethod
    def _finish(batch):
        for job in batch:
            try:
                job.done(job.result, job.error)
            except Exception:
                log.exception("write callback failed")
