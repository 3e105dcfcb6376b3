"""Object ACLs as Eucalyptus grants them, and whether the cloud itself may read an object.

Eucalyptus' object storage (4.0 ``AclUtils``) turns the canned ACL ``aws-exec-read`` into the
owner's FULL_CONTROL plus READ for the group ``http://acs.amazonaws.com/groups/s3/zateam``, whose
members are the cloud's own readers of bundles (4.0: the system and ``eucalyptus/admin``, which
read manifests at RegisterImage and sign the part URLs node controllers download; 4.2: the
``(eucalyptus)aws-exec-read`` account, which does both). moto 5.x keeps only the owner's grant for
that canned ACL, so the sandbox adds the group's READ grant (``patch_canned_acls``), and GetObjectAcl
shows it as Eucalyptus does. ``cloud_can_read`` is the cloud's side: an object is readable by the
cloud when READ or FULL_CONTROL is granted to that group, to all users (``public-read``) or to all
authenticated users (``authenticated-read``).

The sandbox holds bundles to these grants, as AWS does. A 4.0 or 4.2 cloud is more lenient than
its own ACLs: GetObject allows the object storage's administrator override, and every
``eucalyptus`` or ``(eucalyptus)…`` account counts as a system administrator there, so its bundle
readers read a private object too.
"""

from __future__ import annotations

import threading

EXEC_READ_GROUP = "http://acs.amazonaws.com/groups/s3/zateam"
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
CLOUD_READERS = frozenset({EXEC_READ_GROUP, ALL_USERS, AUTHENTICATED_USERS})
READ_PERMISSIONS = frozenset({"READ", "FULL_CONTROL"})

_lock = threading.Lock()
_patched = False


def patch_canned_acls() -> None:
    """Give moto's ``aws-exec-read`` canned ACL Eucalyptus' READ grant to the cloud (idempotent)."""
    global _patched
    with _lock:
        if _patched:
            return
        from moto.s3 import models, responses

        canned = models.get_canned_acl

        def get_canned_acl(acl: str):
            result = canned(acl)
            if acl == "aws-exec-read":
                result.grants.append(models.FakeGrant([models.FakeGrantee(uri=EXEC_READ_GROUP)],
                                                      [models.PERMISSION_READ]))
            return result

        models.get_canned_acl = get_canned_acl
        responses.get_canned_acl = get_canned_acl      # moto's responses imported the name
        _patched = True


def cloud_can_read(acl) -> bool:
    """Does moto's ACL ``acl`` (a ``FakeAcl`` or None) let the cloud read the object?"""
    return any(grantee.uri in CLOUD_READERS and READ_PERMISSIONS.intersection(grant.permissions)
               for grant in (acl.grants if acl is not None else ())
               for grantee in grant.grantees)
