"""The error codes that mean "who are you" or "not allowed", and the hints recon's cloud errors give."""

from __future__ import annotations

UNREACHABLE_HINT = (
    "is the cloud reachable? source your eucarc? "
    "(or set [cloud].endpoint to the front end, e.g. http://clc:8773)"
)
NOT_THE_SERVICE_HINT = "is the URL right for this Eucalyptus version? is a proxy or another web server in the way?"
CREDENTIALS_HINT = (
    "set EC2_ACCESS_KEY and EC2_SECRET_KEY (source your eucarc), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or name a profile with [cloud].profile or AWS_PROFILE"
)

AUTH_CODES = frozenset({
    "AuthFailure",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidSecurity",
    "ExpiredToken",
    "RequestExpired",
    "RequestTimeTooSkewed",
})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"})


def hint_for(service: str, code: str) -> str | None:
    """What to check when ``service`` answered with error ``code``; ``None`` when nothing helps."""
    if code in AUTH_CODES:
        return "check the credentials and the clock: " + CREDENTIALS_HINT
    if code in DENIED_CODES:
        if service == "properties":
            return "only cloud administrators may read or change cloud properties (use the admin's eucarc)"
        return "the credentials are valid but not allowed to do this"
    return None
