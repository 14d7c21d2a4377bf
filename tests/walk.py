"""The crawler of the production-mode site walk (``tests/test_site_walk.py``).

It reads pages as a browser would (the standard library's HTML parser, no new dependency):
links (``<a href>``), htmx GETs (``hx-get``) and every ``<form>`` with the values it renders
(inputs, checked boxes and radios, selected options, textareas, the pressed submit button and
any ``hx-post`` on it). It fetches and submits them through Django's test ``Client`` with CSRF
checks on, following redirects one hop at a time, and records every request it makes as a
``Visit``; nothing it was given is skipped without a line in the report.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from django.http import HttpResponse
from django.test import Client
from django.urls import Resolver404, resolve

REDIRECTS = (301, 302, 303, 307, 308)
HX_VERBS = ("post", "put", "patch", "delete")
# Where the walk never goes: static files, and the Django admin (no navigation links to it;
# tests/staff covers it).
NOT_PAGES = ("/static/", "/django-admin/")
# A form re-rendered with its error: Django's error list, an alert, or an error message.
FORM_ERROR = re.compile(r'class="[^"]*\berrorlist\b|role="alert"|\bflash-error\b')


@dataclass(frozen=True)
class Form:
    """One way to submit one form: its fields as rendered, and the button pressed."""

    page: str  # where it was found
    method: str  # "get" or "post"
    action: str  # where a plain submission goes
    hx_action: str  # where htmx sends it (the action when the form has no hx-post)
    fields: tuple[tuple[str, str], ...]
    button: tuple[str, str] | None  # the pressed submit button's name and value, if named
    label: str  # the button's text, for the report
    multipart: bool
    csrf_header: str  # the page's hx-headers token, sent by htmx as X-CSRFToken
    # Required fields rendered empty: (name, input type, min, the select's non-empty options)
    blanks: tuple[tuple[str, str, str, tuple[str, ...]], ...] = ()
    htmx_only: bool = False  # an element with hx-post (or another verb) outside any form

    @property
    def route(self) -> str:
        return route_name(self.action)

    @property
    def kind(self) -> tuple[Any, ...]:
        """Forms that differ only by the object they act on (one per row) share a kind."""
        names = tuple(sorted({name for name, _ in self.fields}))
        return (self.method, shape(self.action), shape(self.hx_action), names, self.button)

    def data(self) -> list[tuple[str, str]]:
        return [*self.fields, *([self.button] if self.button else [])]

    def filled(self, n: int) -> Form | None:
        """The form with its required blanks filled in as a person would (``n`` keeps
        addresses and names unique), or None when nothing was blank. Passwords are filled only
        outside the account pages (an SMTP password, say): never the persona's own."""
        fields = list(self.fields)
        changed = False
        for name, kind, low, options in self.blanks:
            if kind == "password" and self.route.startswith(("account_", "mfa_")):
                continue
            value = options[0] if options else sample(name, kind, low, n)
            for i, (field_name, field_value) in enumerate(fields):
                if field_name == name and field_value == "":
                    fields[i] = (name, value)
                    break
            else:
                fields.append((name, value))
            changed = True
        if not changed:
            return None
        return replace(self, fields=tuple(fields), label=f"{self.label}, filled")


@dataclass
class Page:
    links: list[str] = field(default_factory=list)
    hx_gets: list[str] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)
    elsewhere: list[tuple[str, str]] = field(default_factory=list)  # (href, why not followed)


@dataclass
class Visit:
    """One request of the walk and what it answered (after redirects, where it landed)."""

    persona: str
    how: str  # "link", "hx-get", "redirect", "GET form", "POST form", "htmx POST form", …
    method: str
    url: str
    status: int
    route: str
    depth: int = 0
    landed: str = ""  # the last URL of a redirect chain
    landed_status: int = 0
    problem: str = ""  # why it fails the walk (empty: fine)
    trace: str = ""
    text: str = field(default="", repr=False)  # the body (the last one of a redirect chain)

    def line(self) -> str:
        where = f" -> {self.landed} {self.landed_status}" if self.landed else ""
        flag = f"  !! {self.problem}" if self.problem else ""
        return f"{self.status} {self.method} {self.url} [{self.how}, {self.route}]{where}{flag}"


def sample(name: str, kind: str, low: str, n: int) -> str:
    """What a person would type into an empty required field of this name and type."""
    if kind == "email" or "email" in name:
        return f"walk{n}@prospect.example"
    if kind == "number":
        return low or "1"
    if kind == "url":
        return "https://walk.example/"
    if kind == "date":
        return "2026-01-05"
    if kind == "password":
        return "Walk-password-1"
    if "slug" in name:
        return f"walk-{n}"
    if "domain" in name:
        return f"walk{n}.example"
    if name in ("host", "server"):
        return "localhost"
    return f"Walk {n}"


def shape(url: str) -> str:
    """A URL's path with its ids left out: /campaigns/7/start/ -> /campaigns/N/start/."""
    return re.sub(r"/\d+(?=/|$)", "/N", urlsplit(url).path)


def route_name(url: str) -> str:
    path = urlsplit(url).path
    try:
        match = resolve(path)
    except Resolver404:
        return "(no route)"
    return match.view_name or path


def local(base: str, href: str) -> str | None:
    """The site path (with its query) an href leads to, or None when it is not a page of the
    walk (``not_followed`` says why)."""
    if not_followed(base, href):
        return None
    target = urlsplit(urljoin(base, href.strip()))
    return target.path + (f"?{target.query}" if target.query else "")


def not_followed(base: str, href: str) -> str:
    """Why the walk does not follow an href ("" when it does)."""
    href = href.strip()
    if not href or href.startswith("#"):
        return "a place on the same page"
    if href.startswith(("mailto:", "tel:", "javascript:", "data:")):
        return "not a web page"
    target = urlsplit(urljoin(base, href))
    if target.scheme not in ("", "http", "https") or target.netloc not in ("", "testserver"):
        return "leaves the site"
    if target.path.startswith(NOT_PAGES):
        return "a static file or the Django admin (tests/staff walks the admin)"
    return ""


class _Parser(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.url = url
        self.page = Page()
        self.csrf_header = ""
        self.form: dict[str, Any] | None = None
        self.select: dict[str, Any] | None = None
        self.option: dict[str, Any] | None = None
        self.textarea: dict[str, Any] | None = None
        self.button: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value if value is not None else "" for key, value in attrs}
        if tag == "body" and a.get("hx-headers"):
            self.csrf_header = json.loads(a["hx-headers"]).get("x-csrftoken", "")
        if tag == "a" and "href" in a:
            if href := local(self.url, a["href"]):
                self.page.links.append(href)
            elif why := not_followed(self.url, a["href"]):
                self.page.elsewhere.append((a["href"], why))
        if tag == "form":
            self._start_form(a)
            return
        if a.get("hx-get") and (target := local(self.url, a["hx-get"])):
            self.page.hx_gets.append(target)
        if self.form is None:
            self._htmx_request(tag, a)
        if self.form is None or "disabled" in a:
            return
        if tag == "input":
            self._input(a)
        elif tag == "button" and a.get("type", "submit").lower() == "submit":
            self.button = {**a, "text": ""}
        elif tag == "select":
            self.select = {
                "name": a.get("name", ""),
                "multiple": "multiple" in a,
                "required": "required" in a,
                "options": [],
            }
        elif tag == "option" and self.select is not None:
            self.option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
        elif tag == "textarea":
            self.textarea = {"name": a.get("name", ""), "text": "", "required": "required" in a}

    def _htmx_request(self, tag: str, a: dict[str, str]) -> None:
        """An element outside any form that sends an unsafe request with htmx: its hx-vals
        are its data (an ``hx-include`` is left out, and said so in its label)."""
        for verb in HX_VERBS:
            if a.get(f"hx-{verb}") and (url := local(self.url, a[f"hx-{verb}"])):
                vals = json.loads(a.get("hx-vals") or "{}")
                label = f"<{tag}> hx-{verb}" + (
                    " without its hx-include" if a.get("hx-include") else ""
                )
                self.page.forms.append(
                    Form(
                        page=self.url,
                        method=verb,
                        action=url,
                        hx_action=url,
                        fields=tuple((str(k), str(v)) for k, v in vals.items()),
                        button=None,
                        label=label,
                        multipart=False,
                        csrf_header="",
                        htmx_only=True,
                    )
                )

    def _start_form(self, a: dict[str, str]) -> None:
        hx_post = a.get("hx-post", "")
        self.form = {
            "method": (a.get("method") or "get").lower(),
            "action": local(self.url, a.get("action") or self.url) or self.url,
            "hx_action": local(self.url, hx_post) if hx_post else None,
            "multipart": a.get("enctype", "") == "multipart/form-data",
            "fields": [],
            "buttons": [],
            "blanks": [],
        }
        if a.get("hx-get"):
            self.form["hx_action"] = local(self.url, a["hx-get"])

    def _input(self, a: dict[str, str]) -> None:
        assert self.form is not None
        kind = a.get("type", "text").lower()
        name = a.get("name", "")
        if kind in ("submit", "image"):
            self.form["buttons"].append({**a, "text": a.get("value", "")})
        elif kind == "file":
            self.form["multipart"] = True  # sent empty, as a browser does with no file chosen
        elif kind in ("button", "reset") or not name:
            return
        elif kind in ("checkbox", "radio"):
            if "checked" in a:
                self.form["fields"].append((name, a.get("value", "on")))
        else:
            self.form["fields"].append((name, a.get("value", "")))
            if "required" in a and not a.get("value") and kind != "hidden":
                self.form["blanks"].append((name, kind, a.get("min", ""), ()))

    def handle_data(self, data: str) -> None:
        for open_element in (self.option, self.textarea, self.button):
            if open_element is not None:
                open_element["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self.option is not None and self.select is not None:
            self.select["options"].append(self.option)
            self.option = None
        elif tag == "select" and self.select is not None and self.form is not None:
            self._end_select(self.select)
            self.select = None
        elif tag == "textarea" and self.textarea is not None and self.form is not None:
            text = self.textarea["text"]
            # The parser keeps the newline that HTML drops right after <textarea>.
            text = text[1:] if text.startswith("\n") else text
            if self.textarea["name"]:
                self.form["fields"].append((self.textarea["name"], text))
                if self.textarea["required"] and not text:
                    self.form["blanks"].append((self.textarea["name"], "textarea", "", ()))
            self.textarea = None
        elif tag == "button" and self.button is not None and self.form is not None:
            self.form["buttons"].append(self.button)
            self.button = None
        elif tag == "form" and self.form is not None:
            self._end_form(self.form)
            self.form = None

    def _end_select(self, select: dict[str, Any]) -> None:
        assert self.form is not None
        options = select["options"]
        values = [o for o in options if o["selected"]]
        if not values and options and not select["multiple"]:
            values = options[:1]  # a browser sends the first option when none is selected

        def value_of(option: dict[str, Any]) -> str:
            return str(option["value"] if option["value"] is not None else option["text"].strip())

        for option in values:
            if select["name"]:
                self.form["fields"].append((select["name"], value_of(option)))
        chosen = [value_of(o) for o in values]
        if select["name"] and select["required"] and not any(chosen):
            offered = tuple(v for v in map(value_of, options) if v)
            if offered:
                self.form["blanks"].append((select["name"], "select", "", offered))

    def _end_form(self, form: dict[str, Any]) -> None:
        buttons = form["buttons"] or [{}]
        for button in buttons:
            named = (button["name"], button.get("value", "")) if button.get("name") else None
            hx_action = form["hx_action"]
            if button.get("hx-post"):
                hx_action = local(self.url, button["hx-post"])
            action = form["action"]
            if button.get("formaction"):
                action = local(self.url, button["formaction"]) or action
            self.page.forms.append(
                Form(
                    page=self.url,
                    method=form["method"],
                    action=action,
                    hx_action=hx_action or action,
                    fields=tuple(form["fields"]),
                    button=named,
                    label=" ".join(str(button.get("text", "")).split()) or "(enter)",
                    multipart=form["multipart"],
                    csrf_header="",
                    blanks=tuple(form["blanks"]),
                )
            )


def parse(url: str, html: str) -> Page:
    parser = _Parser(url)
    parser.feed(html)
    parser.close()
    page = parser.page
    if parser.csrf_header:
        page.forms = [replace(f, csrf_header=parser.csrf_header) for f in page.forms]
    return page


def body_of(response: HttpResponse) -> bytes:
    """The whole body; a streamed one (CSV) is read to its end, as a download would be."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return bytes(response.content)


def trace_of(response: HttpResponse) -> str:
    info = getattr(response, "exc_info", None)
    return "".join(traceback.format_exception(*info)) if info else ""


PageCheck = Callable[[str, HttpResponse, str], str]  # (url, response, text) -> problem or ""


class Walker:
    """Walks one persona's pages and submits their forms; every request becomes a ``Visit``."""

    def __init__(self, persona: str, client: Client, page_checks: Iterable[PageCheck] = ()):
        self.persona = persona
        self.client = client
        self.page_checks = list(page_checks)
        self.visits: list[Visit] = []
        self.pages: dict[str, Page] = {}  # every page parsed, by URL
        self.forms: list[Form] = []  # every form seen, in the order seen

    # --- requests ------------------------------------------------------------------------------

    def _request(self, call: str, *args: Any, **kwargs: Any) -> tuple[HttpResponse, str, str]:
        """One request; returns the response, its text (read to the end) and any traceback."""
        try:
            response = getattr(self.client, call)(*args, **kwargs)
            raw = body_of(response)
        except Exception:  # a streamed body that fails half-way: a 500 to the user
            error = HttpResponse(status=500)
            return error, "", traceback.format_exc()
        text = raw.decode("utf-8", errors="replace")
        return response, text, trace_of(response)

    def _record(self, visit: Visit, response: HttpResponse, text: str, trace: str) -> Visit:
        visit.text = text
        if response.status_code >= 500:
            visit.problem = f"server error {response.status_code}"
            visit.trace = trace
        elif response.status_code == 200:
            for check in self.page_checks:
                if problem := check(visit.url, response, text):
                    visit.problem = problem
                    break
        self.visits.append(visit)
        return visit

    def fetch(self, url: str, *, how: str, depth: int, htmx: bool = False) -> Visit:
        """GET a page, following redirects one hop at a time; parses what it lands on."""
        headers = {"HX-Request": "true"} if htmx else {}
        response, text, trace = self._request("get", url, headers=headers)
        visit = self._record(
            Visit(self.persona, how, "GET", url, response.status_code, route_name(url), depth),
            response,
            text,
            trace,
        )
        self._land(visit, response, text, depth)
        return visit

    def _land(
        self, visit: Visit, response: HttpResponse, text: str, depth: int, *, read: bool = True
    ) -> None:
        """Follow the redirects (or htmx's HX-Redirect) of a response; with ``read``, parse the
        page it lands on for the walk (a form's landing page is checked, not walked from)."""
        url = visit.url
        for _ in range(8):
            target = response.get("HX-Redirect") or (
                response.get("Location") if response.status_code in REDIRECTS else None
            )
            if not target:
                break
            nxt = local(url, target)
            if nxt is None:  # leaves the site (an OAuth provider, say): where it lands is theirs
                visit.landed, visit.landed_status = target, 0
                return
            url = nxt
            response, text, trace = self._request("get", url)
            hop = self._record(
                Visit(self.persona, "redirect", "GET", url, response.status_code, route_name(url)),
                response,
                text,
                trace,
            )
            hop.depth = depth
            visit.landed, visit.landed_status = url, response.status_code
            visit.text = text  # the body of the last page of the chain, as documented
        html = "text/html" in response.get("Content-Type", "")
        if read and response.status_code == 200 and html and url not in self.pages:
            self.pages[url] = page = parse(url, text)
            self.forms.extend(page.forms)

    # --- the walk of pages -------------------------------------------------------------------

    def walk(self, start: str, *, depth: int) -> None:
        """Breadth first from ``start``: links and hx-gets up to ``depth`` clicks away."""
        seen: set[str] = set()
        frontier = [(start, "link", False)]
        for level in range(depth + 1):
            following: list[tuple[str, str, bool]] = []
            for url, how, htmx in frontier:
                if url in seen:
                    continue
                seen.add(url)
                before = set(self.pages)
                self.fetch(url, how=how, depth=level, htmx=htmx)
                for landed in set(self.pages) - before:
                    seen.add(landed)
                    page = self.pages[landed]
                    following += [(link, "link", False) for link in page.links]
                    following += [(target, "hx-get", True) for target in page.hx_gets]
            frontier = following

    # --- forms ---------------------------------------------------------------------------------

    def submit(self, form: Form, *, htmx: bool) -> Visit:
        data = form.data()
        url = form.hx_action if htmx else form.action
        headers: dict[str, str] = {}
        if htmx:
            headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{form.page}"}
            if form.csrf_header:
                headers["X-CSRFToken"] = form.csrf_header
        how = f"{'htmx' if htmx else 'plain'} {form.method.upper()} form “{form.label}”"
        if form.method == "get":
            query = urlencode(data)
            path = urlsplit(url).path
            target = f"{path}?{query}" if query else path
            response, text, trace = self._request("get", target, headers=headers)
            method, url = "GET", target
        elif form.multipart and not htmx:
            multi: dict[str, list[str]] = {}
            for name, value in data:
                multi.setdefault(name, []).append(value)
            response, text, trace = self._request("post", url, data=multi, headers=headers)
            method = "POST"
        else:
            method = form.method.upper()
            response, text, trace = self._request(
                "generic",
                method,
                url,
                data=urlencode(data),
                content_type="application/x-www-form-urlencoded",
                headers=headers,
            )
        visit = self._record(
            Visit(self.persona, how, method, url, response.status_code, route_name(url)),
            response,
            text,
            trace,
        )
        if 400 <= response.status_code < 500 and "<form" in text and FORM_ERROR.search(text):
            visit.how += " (refused with a message)"
        self._land(visit, response, text, depth=0, read=False)
        return visit

    def reload(self, url: str) -> Page | str:
        """The page as it renders now, or why it could not be read."""
        response, text, trace = self._request("get", url)
        visit = self._record(
            Visit(self.persona, "reload", "GET", url, response.status_code, route_name(url)),
            response,
            text,
            trace,
        )
        if response.status_code != 200:
            return f"{url} answered {response.status_code}"
        if visit.problem:
            return f"{url}: {visit.problem}"
        return parse(url, text)
