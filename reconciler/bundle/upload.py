"""Uploading a bundle to object storage: the parts as the bundler makes them, then the manifest.

``PartUploader`` is a part sink: each part goes to ``BUCKET/PART`` on a small thread pool
while the bundler goes on; at most ``workers + 1`` parts are held in memory. A part that
the bucket already holds with the same MD5 (its ETag) is not sent again, so an interrupted
install resumes where it stopped (the bundler makes identical parts for the same revision).
``put_manifest`` uploads the manifest once every part is there.

Parts and manifest carry the canned ACL ``BUNDLE_ACL``, ``aws-exec-read``, as euca2ools uploads
them (its ``--acl`` default, sent as the ``x-amz-acl`` header): the owner keeps full control and
the cloud may read the bundle it is to launch (Eucalyptus grants READ to its ``aws-exec-read``
group, AWS to EC2).
A ``stop`` token ends the upload before the next part (the bundler stops with it).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from ..interrupts import StopToken
from .writer import BundlePart

BUNDLE_ACL = "aws-exec-read"


class PartUploader:
    def __init__(self, cloud, bucket: str, existing: dict[str, str], *, where: str, workers: int = 4,
                 progress: Callable[[int, int, int], None] | None = None, stop: StopToken | None = None):
        self.cloud = cloud
        self.bucket = bucket
        self.existing = existing          # object name -> ETag without quotes
        self.where = where
        self.progress = progress or (lambda sent, skipped, size: None)
        self.stop = stop or StopToken()
        self.sent = self.skipped = self.bytes = 0
        self._slots = threading.BoundedSemaphore(workers + 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recon-upload")
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def __call__(self, part: BundlePart, data: bytes) -> None:
        if self.existing.get(part.filename) == part.md5:
            with self._lock:
                self.skipped += 1
                self.bytes += part.size
            return
        self._slots.acquire()
        if self.stop.stopped:
            self._slots.release()
            self.stop.check(self.where, f"before uploading {part.filename} ({self.sent} parts uploaded)")
        self._futures.append(self._pool.submit(self._put, part, data))

    def _put(self, part: BundlePart, data: bytes) -> None:
        try:
            self.cloud.call("s3", "put_object", where=self.where, Bucket=self.bucket, Key=part.filename, Body=data,
                            ACL=BUNDLE_ACL)
            with self._lock:
                self.sent += 1
                self.bytes += part.size
                self.progress(self.sent, self.skipped, self.bytes)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Wait for every upload; raise the first failure."""
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown(wait=True)

    def put_manifest(self, name: str, body: bytes) -> None:
        """Upload the manifest, after ``close``: the cloud must never see a manifest without its parts."""
        self.cloud.call("s3", "put_object", where=self.where, Bucket=self.bucket, Key=name, Body=body,
                        ACL=BUNDLE_ACL)
