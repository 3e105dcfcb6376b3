"""The servo's HAProxy template: apply the desired settings, render it, check it with ``haproxy -c``.

``render_template`` edits the ``global`` and ``defaults`` sections of the shipped
``haproxy_template.conf`` line by line, keeping every other line (comments included) as it is:

- a setting replaces the first line with its keyword (keeping that line's indentation and trailing
  comment) and drops later duplicates; a new keyword goes after the section's last setting, new
  keywords in sorted order, so the result depends only on the settings, not their order in the file;
- ``options = [...]`` (defaults) is the complete list of ``option`` lines, put where the first was;
- a line that already says what a setting says (``option http-server-close # affects KA on/off``,
  ``timeout connect     5s``) stays as it is, so the diff shows only real changes;
- flags (``daemon``) take true / false; ``log`` takes one target or a list;
- the deprecated ``contimeout`` / ``clitimeout`` / ``srvtimeout`` become ``timeout connect|client|server``
  with the same value (bare numbers are milliseconds in both forms) unless the file sets them.

Only keywords in ``GLOBAL`` / ``DEFAULTS`` are accepted, each value is checked against its keyword's
grammar, and no value may hold a newline, control character, ``#``, quote, backslash or start with
a section keyword (DESIGN §8).

``check`` runs the real ``haproxy -c`` on what this module renders.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import ConfigError

SECTIONS = frozenset({"global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers",
                      "mailers", "program", "http-errors", "ring", "cache"})
DEPRECATED = {"contimeout": "timeout connect", "clitimeout": "timeout client", "srvtimeout": "timeout server"}
DEFAULT_INDENT = "  "
TOKEN = re.compile(r"^[A-Za-z0-9_.:/@%+=,!*\[\]()-]+$")
TIME = re.compile(r"^[0-9]+(us|ms|s|m|h|d)?$")
FORBIDDEN = {"#": "'#', which starts a comment in HAProxy", '"': "a quote", "'": "a quote", "\\": "a backslash"}

Check = Callable[[str], "str | None"]


def _time(value: str) -> str | None:
    return None if TIME.match(value) else "must be a time such as 5000 (milliseconds), 500ms, 5s, 2m or 1h"


INT_MAX = 2**31 - 1     # HAProxy reads counts into a C int: a larger one wraps round


def _count(minimum: int = 0) -> Check:
    def check(value: str) -> str | None:
        if not re.fullmatch(r"[0-9]{1,19}", value) or not minimum <= int(value) <= INT_MAX:
            return f"must be a whole number from {minimum} to {INT_MAX}"
        return None
    return check


def _choice(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else "must be one of " + ", ".join(allowed)
    return check


def _pattern(regex: str, description: str) -> Check:
    compiled = re.compile(regex)

    def check(value: str) -> str | None:
        return None if compiled.fullmatch(value) else f"must be {description}"
    return check


def _words(value: str) -> str | None:
    words = value.split(" ")
    if not all(TOKEN.match(word) for word in words):
        return "must be words of letters, digits and _.:/@%+=,!*[]()- separated by single spaces"
    return None


def _log(value: str) -> str | None:
    if value == "global":
        return None
    return _words(value) or (None if len(value.split(" ")) >= 2 else
                             "must be 'global' or 'TARGET FACILITY [LEVEL [MINLEVEL]]'")


@dataclass(frozen=True)
class Keyword:
    """One HAProxy keyword recon may set: where it may appear and what its value must look like."""

    check: Check | None = None   # None for flags
    kind: str = "value"          # value: one line; flag: present or not; multi: one line per list item


_BALANCE = r"(roundrobin|static-rr|leastconn|first|source|random|uri|url_param [A-Za-z0-9_.-]+|" \
           r"hdr\([A-Za-z0-9_-]+\)|rdp-cookie(\([A-Za-z0-9_-]+\))?)"
_HASH_TYPE = r"(map-based|consistent)( (sdbm|djb2|wt6|crc32))?( avalanche)?"

GLOBAL: dict[str, Keyword] = {
    "maxconn": Keyword(_count(1)),
    "maxconnrate": Keyword(_count(1)),
    "maxsessrate": Keyword(_count(1)),
    "maxpipes": Keyword(_count(0)),
    "ulimit-n": Keyword(_count(1)),
    "nbthread": Keyword(_count(1)),
    "spread-checks": Keyword(_pattern(r"[0-9]|[1-4][0-9]|50", "a percentage from 0 to 50")),
    "hard-stop-after": Keyword(_time),
    "daemon": Keyword(kind="flag"),
    "quiet": Keyword(kind="flag"),
    "user": Keyword(_pattern(r"[a-z_][a-z0-9_-]{0,31}", "a user name")),
    "group": Keyword(_pattern(r"[a-z_][a-z0-9_-]{0,31}", "a group name")),
    "uid": Keyword(_count(0)),
    "gid": Keyword(_count(0)),
    "chroot": Keyword(_pattern(r"/[A-Za-z0-9_./-]*", "an absolute path")),
    "pidfile": Keyword(_pattern(r"/[A-Za-z0-9_./-]*", "an absolute path")),
    "node": Keyword(_pattern(r"[A-Za-z0-9_.-]+", "a name")),
    "description": Keyword(_words),
    "log": Keyword(_log, kind="multi"),
    "log-tag": Keyword(_pattern(r"[A-Za-z0-9_.-]+", "a tag")),
    "log-send-hostname": Keyword(_pattern(r"[A-Za-z0-9_.-]+", "a host name")),
    "stats timeout": Keyword(_time),
    "stats maxconn": Keyword(_count(1)),
    "tune.bufsize": Keyword(_count(1024)),
    "tune.maxrewrite": Keyword(_count(0)),
    "tune.http.maxhdr": Keyword(_count(1)),
    "tune.ssl.default-dh-param": Keyword(_choice("1024", "2048", "3072", "4096")),
    "ssl-default-bind-ciphers": Keyword(_pattern(r"[A-Za-z0-9_:+!@=.-]+", "an OpenSSL cipher list")),
    "ssl-default-bind-options": Keyword(_words),
    "ssl-default-server-ciphers": Keyword(_pattern(r"[A-Za-z0-9_:+!@=.-]+", "an OpenSSL cipher list")),
    "ssl-default-server-options": Keyword(_words),
    "ssl-server-verify": Keyword(_choice("none", "required")),
}

DEFAULTS: dict[str, Keyword] = {
    "mode": Keyword(_choice("http", "tcp")),
    "balance": Keyword(_pattern(_BALANCE, "a balance algorithm such as roundrobin, leastconn or source")),
    "hash-type": Keyword(_pattern(_HASH_TYPE, "map-based or consistent [FUNCTION] [avalanche]")),
    "maxconn": Keyword(_count(1)),
    "fullconn": Keyword(_count(1)),
    "backlog": Keyword(_count(1)),
    "retries": Keyword(_count(0)),
    "log": Keyword(_log, kind="multi"),
    "http-reuse": Keyword(_choice("never", "safe", "aggressive", "always")),
    "default-server": Keyword(_words),
    **{f"timeout {name}": Keyword(_time) for name in (
        "connect", "client", "server", "http-keep-alive", "http-request", "queue", "check", "tunnel",
        "client-fin", "server-fin", "tarpit")},
}

OPTIONS = frozenset({
    "abortonclose", "allbackups", "checkcache", "clitcpka", "contstats", "dontlog-normal", "dontlognull",
    "forwardfor", "http-buffer-request", "http-ignore-probes", "http-keep-alive", "http-no-delay",
    "http-pretend-keepalive", "http-server-close", "http-use-proxy-header", "httpchk", "httpclose", "httplog",
    "independent-streams", "log-health-checks", "log-separate-errors", "logasap", "nolinger", "originalto",
    "persist", "prefer-last-server", "redispatch", "socket-stats", "splice-auto", "splice-request",
    "splice-response", "srvtcpka", "tcp-check", "tcp-smart-accept", "tcp-smart-connect", "tcpka", "tcplog",
    "transparent",
})

GRAMMAR = {"global": GLOBAL, "defaults": DEFAULTS}

def key_path(where: str, key: str) -> str:
    """``where`` and a TOML key, quoted when it is not a bare key."""
    return f"{where}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'{where}."{key}"'


def _text(value: Any, where: str) -> str:
    """A scalar setting as text, refused if it could break out of its line."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"must be a string or an integer, not {type(value).__name__}", where=where)
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ConfigError(f"value {text!r} contains a newline", where=where)
    if "\0" in text:
        raise ConfigError(f"value {text!r} contains a NUL byte", where=where)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"value {text!r} contains a control character", where=where)
    for char, what in FORBIDDEN.items():
        if char in text:
            raise ConfigError(f"value {text!r} contains {what}", where=where)
    if text != text.strip() or not text:
        raise ConfigError(f"value {text!r} is empty or has leading or trailing spaces", where=where)
    first = text.split()[0]
    if first in SECTIONS and text != "global":
        raise ConfigError(f"value {text!r} starts with the section header {first!r}", where=where)
    return text


def _lines_for(section: str, key: str, value: Any, where: str) -> tuple[str, list[str]]:
    """(keyword, the setting lines without indentation) for one desired setting."""
    if section == "defaults" and key == "options":
        return "option", _option_lines(value, where)
    keyword = GRAMMAR[section].get(key)
    if keyword is None:
        raise ConfigError(f"{key!r} is not a HAProxy keyword recon can set in {section}", where=where,
                          hint=_unknown_keyword_hint(section, key))
    if keyword.kind == "flag":
        if not isinstance(value, bool):
            raise ConfigError(f"{key!r} is a flag: true or false", where=where)
        return key, [key] if value else []
    values = value if keyword.kind == "multi" and isinstance(value, list) else [value]
    lines = []
    for item in values:
        text = _text(item, where)
        problem = keyword.check(text) if keyword.check else None
        if problem:
            raise ConfigError(f"value {text!r} {problem}", where=where)
        lines.append(f"{key} {text}")
    if not lines:
        raise ConfigError("must not be an empty list", where=where)
    return key, lines


def _option_lines(value: Any, where: str) -> list[str]:
    """The ``option NAME`` lines of the defaults table's ``options`` list."""
    if not isinstance(value, list):
        raise ConfigError("must be a list of option names", where=where)
    names = [_text(item, where) for item in value]
    for name in names:
        if name not in OPTIONS:
            close = difflib.get_close_matches(name, sorted(OPTIONS), n=1)
            raise ConfigError(f"unknown HAProxy option {name!r}", where=where,
                              hint=f"did you mean {close[0]!r}?" if close else None)
    if len(set(names)) != len(names):
        raise ConfigError("lists an option twice", where=where)
    return [f"option {name}" for name in names]


def _unknown_keyword_hint(section: str, key: str) -> str | None:
    """What to write instead of a keyword recon cannot set in ``section``."""
    other = "defaults" if section == "global" else "global"
    if key in DEPRECATED:
        return f"use {DEPRECATED[key]!r} (the deprecated form is converted automatically)"
    if key in GRAMMAR[other] or (key == "options" and other == "defaults"):
        return f"{key!r} belongs in the {other} table"
    close = difflib.get_close_matches(key, sorted(GRAMMAR[section]) + (["options"] if section == "defaults" else []),
                                      n=1)
    return f"did you mean {close[0]!r}?" if close else None


def split_comment(line: str) -> tuple[str, str]:
    """(code, trailing comment with the spaces before it)."""
    index = line.find("#")
    if index < 0:
        return line, ""
    code = line[:index].rstrip()
    return code, line[len(code):]


def _line_key(code: str) -> str | None:
    """The keyword a setting line sets: 'maxconn', 'timeout connect', 'option' (for option lines)."""
    words = code.split()
    if not words:
        return None
    if words[0] == "option" or words[:2] == ["no", "option"]:
        return "option"
    if words[0] in ("timeout", "stats") and len(words) > 1:
        return f"{words[0]} {words[1]}"
    return words[0]


def _section_bounds(lines: list[str], name: str) -> tuple[int, int] | None:
    """(header index, end index) of the first section called ``name``."""
    start = None
    for index, line in enumerate(lines):
        words = split_comment(line)[0].split()
        if words and words[0] in SECTIONS:
            if start is not None:
                return start, index
            if words[0] == name:
                start = index
    return None if start is None else (start, len(lines))


def _convert_deprecated(line: str) -> str:
    code, comment = split_comment(line)
    words = code.split()
    if not words or words[0] not in DEPRECATED:
        return line
    indent = code[:len(code) - len(code.lstrip())]
    return f"{indent}{' '.join([DEPRECATED[words[0]], *words[1:]])}{comment}"


def _apply(body: list[str], keyword: str, new: list[str]) -> list[str]:
    """Put ``new`` setting lines in place of ``keyword``'s lines in a section body."""
    matches = [i for i, line in enumerate(body) if _line_key(split_comment(line)[0]) == keyword]
    codes = [i for i, line in enumerate(body) if split_comment(line)[0].strip()]
    indent = DEFAULT_INDENT
    if codes:
        first = body[codes[0]]
        indent = first[:len(first) - len(first.lstrip())]
    if not matches:
        at = codes[-1] + 1 if codes else 0
        return body[:at] + [indent + line for line in new] + body[at:]
    old_code, comment = split_comment(body[matches[0]])
    indent = old_code[:len(old_code) - len(old_code.lstrip())]
    # a line that already says what a new one says stays as it is, spacing and comment included
    unchanged = {tuple(split_comment(body[i])[0].split()): body[i] for i in matches}
    replacement = [unchanged.get(tuple(line.split()), indent + line) for line in new]
    if len(replacement) == 1 and keyword != "option" and tuple(new[0].split()) not in unchanged:
        replacement[0] += comment
    kept = [line for i, line in enumerate(body) if i not in matches[1:]]
    at = matches[0]
    return kept[:at] + replacement + kept[at + 1:]


def render_template(shipped: str, *, global_settings: Mapping[str, Any] | None = None,
                    defaults_settings: Mapping[str, Any] | None = None, where: str = "haproxy") -> str:
    """The template with the desired settings applied; ConfigError (naming the key) for a bad one."""
    lines = [_convert_deprecated(line) for line in shipped.splitlines()]
    for section, settings in (("global", global_settings or {}), ("defaults", defaults_settings or {})):
        changes = [_lines_for(section, key, settings[key], key_path(f"{where}.{section}", key))
                   for key in sorted(settings)]
        if not changes:
            continue
        bounds = _section_bounds(lines, section)
        if bounds is None:
            lines += ["", section]
            bounds = (len(lines) - 1, len(lines))
        start, end = bounds
        body = lines[start + 1:end]
        for keyword, new in changes:
            body = _apply(body, keyword, new)
        lines[start + 1:end] = body
    return "\n".join(lines) + "\n"
