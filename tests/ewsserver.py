"""A stand-in for an on-premises Exchange server's EWS, on loopback, for the tests.

It is NOT Exchange: it answers only the few SOAP operations msc-admin's exchangelib calls send,
as much of each as exchangelib needs to parse the answer:

- SOAP Autodiscover ``GetUserSettings`` at ``/autodiscover/autodiscover.svc`` (the EWS URL);
- at ``/EWS/Exchange.asmx``: the unauthenticated probe (any body; answered 401 with the
  ``WWW-Authenticate`` schemes offered), ``FindItem`` (``IsGreaterThanOrEqualTo`` on
  ``item:DateTimeReceived``, ids, ``DateTimeReceived`` and ``Size``, indexed paging),
  ``GetItem`` (with ``MimeContent``) and ``CreateItem`` (``MimeContent``, recorded as sent and
  kept in Sent Items). Anything else is answered ``ErrorInvalidOperation`` and recorded.

Sign-in is NTLM (a real handshake: pyspnego's NTLM acceptor checks the client's response against
the password, through ``NTLM_USER_FILE``) or Basic, whichever ``offer`` lists; HTTPS with the
certificate it is given; HTTP/1.1 keep-alive, as NTLM needs one connection for its handshake.
``ews_status`` makes every authenticated EWS request answer that status (403: EWS disabled;
503: unavailable), ``access_denied`` answers each operation ``ErrorAccessDenied``, and
``settings["cut_on"] = "CreateItem"`` closes the connection when that operation has arrived,
without an answer.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import spnego
from defusedxml import ElementTree

from tests.mailservers import LOOPBACK

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
A = "http://schemas.microsoft.com/exchange/2010/Autodiscover"


@dataclass
class Item:
    mime: bytes
    received: datetime
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def size(self) -> int:
        return len(self.mime)


@dataclass
class EwsServer:
    host: str
    port: int
    folders: dict[str, list[Item]]
    operations: list[str]  # every SOAP operation asked, in order ("probe" for the auth probe)
    sent: list[bytes]  # the MIME of every CreateItem
    auth_seen: list[str]  # the scheme of every authenticated request: "NTLM" / "Basic"
    settings: dict[str, Any]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def ews_url(self) -> str:
        return f"https://{self.host}:{self.port}/EWS/Exchange.asmx"

    def deliver(self, folder: str, mime: bytes, received: datetime | None = None) -> Item:
        item = Item(mime, received or datetime.now(UTC).replace(microsecond=0))
        self.folders[folder].append(item)
        return item


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{S}"><s:Header>'
        f'<h:ServerVersionInfo xmlns:h="{T}" MajorVersion="15" MinorVersion="1" '
        'MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/>'
        f'</s:Header><s:Body xmlns:m="{M}" xmlns:t="{T}">{body}</s:Body></s:Envelope>'
    ).encode()


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(operation: str, code: str, text: str) -> bytes:
    return _envelope(
        f"<m:{operation}Response><m:ResponseMessages>"
        f'<m:{operation}ResponseMessage ResponseClass="Error"><m:MessageText>{escape(text)}'
        f"</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
        f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{operation}ResponseMessage>"
        f"</m:ResponseMessages></m:{operation}Response>"
    )


@contextmanager
def ews_server(
    cert: tuple[Path, Path],
    *,
    username: str,
    password: str,
    offer: tuple[str, ...] = ("NTLM", "Basic"),
    email: str = "rep@localhost",
    autodiscover: bool = True,
    ews_status: int = 200,
    access_denied: bool = False,
    tmp: Path | None = None,
) -> Iterator[EwsServer]:
    """Start the stand-in (module docstring); ``tmp`` holds its NTLM password file."""
    folders: dict[str, list[Item]] = {"inbox": [], "junkemail": [], "sentitems": []}
    server_settings: dict[str, Any] = {"ews_status": ews_status, "access_denied": access_denied}
    state = EwsServer(LOOPBACK, 0, folders, [], [], [], server_settings)
    basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates the connection

        ntlm: Any = None
        signed_in = False

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] = ()):  # type: ignore[assignment]
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _challenge(self) -> list[tuple[str, str]]:
            return [
                ("WWW-Authenticate", "NTLM" if scheme == "NTLM" else 'Basic realm="localhost"')
                for scheme in offer
            ]

        def _authenticated(self) -> bool:
            """True once signed in; otherwise answers the next step of the sign-in itself."""
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic ") and "Basic" in offer:
                if header == basic:
                    state.auth_seen.append("Basic")
                    return True
                self._answer(401, headers=self._challenge())
                return False
            if header.startswith("NTLM ") and "NTLM" in offer:
                token = base64.b64decode(header[5:])
                if self.ntlm is None or token[8:12] == b"\x01\x00\x00\x00":  # NEGOTIATE
                    self.ntlm = spnego.server(protocol="ntlm")
                try:
                    answer = self.ntlm.step(token)
                except spnego.exceptions.SpnegoError:
                    self.ntlm = None
                    self._answer(401, headers=self._challenge())
                    return False
                if self.ntlm.complete:
                    self.signed_in = True
                    state.auth_seen.append("NTLM")
                    return True
                challenge = "NTLM " + base64.b64encode(answer or b"").decode()
                self._answer(401, headers=[("WWW-Authenticate", challenge)])
                return False
            if self.signed_in and "NTLM" in offer:  # this connection is authenticated
                state.auth_seen.append("NTLM")
                return True
            with lock:
                state.operations.append("probe")
            self._answer(401, headers=self._challenge())
            return False

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            path = self.path.lower()
            if path.startswith("/autodiscover/autodiscover.svc"):
                if not state.settings.get("autodiscover", autodiscover):
                    self._answer(404)
                    return
                if self._authenticated():
                    with lock:
                        state.operations.append("GetUserSettings")
                    self._answer(200, _user_settings(state.ews_url))
                return
            if path != "/ews/exchange.asmx":
                self._answer(404)
                return
            if not self._authenticated():
                return
            status = state.settings["ews_status"]
            if status != 200:
                self._answer(status)
                return
            root = ElementTree.fromstring(body)
            operation = root.find(f"{{{S}}}Body")[0]
            name = operation.tag.rpartition("}")[2]
            with lock:
                state.operations.append(name)
            if state.settings.get("cut_on") == name:  # the request arrived; no answer comes
                if name == "CreateItem":
                    state.sent.append(_mime(operation))
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if state.settings["access_denied"]:
                self._answer(200, _error(name, "ErrorAccessDenied", "Access is denied."))
                return
            handler = {"FindItem": _find, "GetItem": _get, "CreateItem": _create}.get(name)
            if handler is None:
                self._answer(200, _error(name, "ErrorInvalidOperation", "Not in the stand-in."))
                return
            with lock:
                self._answer(200, handler(state, operation))

    if "NTLM" in offer:
        assert tmp is not None, "NTLM needs a directory for its password file"
        users = tmp / "ntlm-users"
        domain, _, user = username.rpartition("\\")
        users.write_text(f"{domain}:{user}:{password}\n")
        previous = os.environ.get("NTLM_USER_FILE")
        os.environ["NTLM_USER_FILE"] = str(users)
    httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    httpd.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.host, state.port = "localhost", httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        if "NTLM" in offer:
            if previous is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = previous


def _user_settings(ews_url: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{S}" xmlns:a="http://www.w3.org/2005/08/addressing">'
        f'<s:Body><GetUserSettingsResponseMessage xmlns="{A}">'
        "<Response><ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses><UserResponse>"
        "<ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>"
        '<RedirectTarget i:nil="true" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"/>'
        "<UserSettingErrors/><UserSettings>"
        '<UserSetting i:type="StringSetting" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">'
        f"<Name>ExternalEwsUrl</Name><Value>{escape(ews_url)}</Value></UserSetting>"
        "</UserSettings></UserResponse></UserResponses></Response>"
        "</GetUserSettingsResponseMessage></s:Body></s:Envelope>"
    ).encode()


def _since(operation: Any) -> datetime | None:
    found = operation.find(f".//{{{T}}}IsGreaterThanOrEqualTo")
    if found is None:
        return None
    constant = found.find(f".//{{{T}}}Constant")
    return datetime.fromisoformat(constant.get("Value").replace("Z", "+00:00"))


def _item_xml(item: Item, *, mime: bool) -> str:
    content = (
        f'<t:MimeContent CharacterSet="UTF-8">{base64.b64encode(item.mime).decode()}'
        "</t:MimeContent>"
        if mime
        else ""
    )
    return (
        f'<t:Message>{content}<t:ItemId Id="{item.id}" ChangeKey="ck-{item.id}"/>'
        f"<t:DateTimeReceived>{_stamp(item.received)}</t:DateTimeReceived>"
        f"<t:Size>{item.size}</t:Size></t:Message>"
    )


def _find(state: EwsServer, operation: Any) -> bytes:
    since = _since(operation)
    view = operation.find(f"{{{M}}}IndexedPageItemView")
    offset = int(view.get("Offset", "0")) if view is not None else 0
    limit = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 1000
    answers = []
    for folder in operation.find(f"{{{M}}}ParentFolderIds"):
        items = sorted(
            (i for i in state.folders[folder.get("Id")] if since is None or i.received >= since),
            key=lambda i: i.received,
        )
        page = items[offset : offset + limit]
        last = "true" if offset + len(page) >= len(items) else "false"
        answers.append(
            '<m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
            f'</m:ResponseCode><m:RootFolder IndexedPagingOffset="{offset + len(page)}" '
            f'TotalItemsInView="{len(items)}" IncludesLastItemInRange="{last}"><t:Items>'
            + "".join(_item_xml(i, mime=False) for i in page)
            + "</t:Items></m:RootFolder></m:FindItemResponseMessage>"
        )
    return _envelope(
        f"<m:FindItemResponse><m:ResponseMessages>{''.join(answers)}"
        "</m:ResponseMessages></m:FindItemResponse>"
    )


def _get(state: EwsServer, operation: Any) -> bytes:
    by_id = {i.id: i for items in state.folders.values() for i in items}
    answers = []
    for wanted in operation.find(f"{{{M}}}ItemIds"):
        item = by_id.get(wanted.get("Id"))
        if item is None:
            answers.append(
                '<m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>Not found'
                "</m:MessageText><m:ResponseCode>ErrorItemNotFound</m:ResponseCode>"
                "<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:Items/>"
                "</m:GetItemResponseMessage>"
            )
            continue
        answers.append(
            '<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
            f"</m:ResponseCode><m:Items>{_item_xml(item, mime=True)}</m:Items>"
            "</m:GetItemResponseMessage>"
        )
    return _envelope(
        f"<m:GetItemResponse><m:ResponseMessages>{''.join(answers)}"
        "</m:ResponseMessages></m:GetItemResponse>"
    )


def _mime(operation: Any) -> bytes:
    return base64.b64decode(operation.find(f".//{{{T}}}MimeContent").text or "")


def _create(state: EwsServer, operation: Any) -> bytes:
    assert operation.get("MessageDisposition") == "SendAndSaveCopy"
    saved = operation.find(f".//{{{M}}}SavedItemFolderId/{{{T}}}DistinguishedFolderId")
    data = _mime(operation)
    state.sent.append(data)
    state.folders[saved.get("Id") if saved is not None else "sentitems"].append(
        Item(data, datetime.now(UTC).replace(microsecond=0))
    )
    return _envelope(
        "<m:CreateItemResponse><m:ResponseMessages><m:CreateItemResponseMessage "
        'ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items/>'
        "</m:CreateItemResponseMessage></m:ResponseMessages></m:CreateItemResponse>"
    )
