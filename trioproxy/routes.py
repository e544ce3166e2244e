"""Which route a request target belongs to, and the target to send upstream. Pure.

Called once per request, so the table is prepared up front: prefixes sorted longest
first, each with the length to cut and the base path to put in its place. A match is
a `startswith` plus one character check per route; routes are few.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import Route


class RouteTable:
    """Longest-prefix routing on path-segment boundaries."""

    __slots__ = ("_entries",)

    def __init__(self, routes: Sequence[Route]) -> None:
        seen: set[str] = set()
        for route in routes:
            if route.prefix in seen:
                raise ValueError(f"duplicate route prefix {route.prefix!r}")
            seen.add(route.prefix)
        ordered = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
        # "/" matches everything and cuts nothing: the whole target is the rest.
        self._entries = tuple(
            (r.prefix, 0 if r.prefix == "/" else len(r.prefix), r.base_path, r)
            for r in ordered
        )

    def match(self, target: str) -> tuple[Route, str] | None:
        """The route for a request target (path plus optional "?query") and its upstream target.

        A prefix matches on a segment boundary: "/openai" matches "/openai", "/openai/x"
        and "/openai?q" but not "/openaiX". The upstream target is the route's base path
        plus the rest after the prefix, query kept byte for byte, always starting with "/".
        """
        if not target.startswith("/"):
            origin_form = _origin_form(target)
            if origin_form is None:
                return None
            target = origin_form
        for prefix, cut, base_path, route in self._entries:
            if cut == 0:
                rest = target
            elif target.startswith(prefix) and (
                len(target) == cut or target[cut] == "/" or target[cut] == "?"
            ):
                rest = target[cut:]
            else:
                continue
            upstream = base_path + rest
            if not upstream or upstream[0] == "?":
                upstream = "/" + upstream
            return route, upstream
        return None


def _origin_form(target: str) -> str | None:
    """The path and query of an absolute-form target (RFC 9112 §3.2.2), else None."""
    lowered = target[:8].lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return None
    start = target.index("://") + 3
    ends = [i for i in (target.find("/", start), target.find("?", start)) if i >= 0]
    if not ends:
        return "/"
    rest = target[min(ends):]
    return rest if rest[0] == "/" else "/" + rest
