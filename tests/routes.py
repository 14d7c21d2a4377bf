"""Every URL pattern of the project, walked from the URLconf (the security and staff suites)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the route itself when the pattern is unnamed
    route: str  # "/bounces/<int:pk>/"
    callback: Any

    @property
    def params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.route) + re.findall(r"\(\?P<(\w+)>", self.route)

    def sample(self) -> str:
        """A concrete path: 1 for numbers, x for strings (enough to reach the middleware)."""
        path = re.sub(r"<int:\w+>", "1", self.route)
        return re.sub(r"<\w+:\w+>", "x", path)


def all_routes(*, include_admin: bool = False) -> list[Route]:
    """Our own routes and allauth's; the Django admin and regex-only patterns are left out
    unless asked for (the admin is behind the staff gate, which ``tests/staff`` walks)."""
    found: list[Route] = []

    def walk(patterns: list, prefix: str, namespace: str | None) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if str(p.pattern).startswith("django-admin") and not include_admin:
                    continue
                walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
            elif isinstance(p, URLPattern):
                route = "/" + prefix + str(p.pattern)
                if "^" in route or route.startswith("/static"):
                    continue
                name = f"{namespace}:{p.name}" if namespace and p.name else (p.name or route)
                found.append(Route(name=name, route=route, callback=p.callback))

    walk(get_resolver().url_patterns, "", None)
    # Like the resolver, the first pattern for a path wins; a later one is never reached.
    first: dict[str, Route] = {}
    for route in found:
        first.setdefault(route.route, route)
    return list(first.values())
