"""The registry of channel kinds (``channels.kinds``): each kind is one module, complete, and
the rest of the code asks the kind instead of naming it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.template.loader import get_template

from channels import kinds
from channels.kinds import ChannelKind, Kind
from channels.models import Channel, MscServer
from tests.test_locking_services import ROOT, app_sources

# ``ChannelKind.GMAIL`` and the like: code that names one specific kind.
NAMED_KIND = re.compile(r"\bChannelKind\.([A-Z][A-Z0-9_]*)\b")
MOST_FILES_NAMING_A_KIND = 4
# A template comparing a channel's stored kind with a value branches on which kind it is.
TEMPLATE_BRANCH = re.compile(r"channel\.kind\s*[!=]=")


def files_naming_a_kind(sources: dict[str, str]) -> dict[str, list[str]]:
    """The files outside ``channels/kinds/`` that name a specific kind, with the names."""
    found = {}
    for path, text in sources.items():
        if path.startswith("channels/kinds/"):
            continue
        if names := sorted(set(NAMED_KIND.findall(text))):
            found[path] = names
    return found


def test_the_search_for_named_kinds_finds_them_outside_the_kind_modules_only() -> None:
    sources = {
        "sending/a.py": "if channel.kind == ChannelKind.GMAIL or kind in (ChannelKind.MSC_LEGACY,)",
        "channels/kinds/gmail.py": "value = ChannelKind.GMAIL",
        "channels/b.py": "choices=ChannelKind.choices; ChannelKind(value).label",
    }
    assert files_naming_a_kind(sources) == {"sending/a.py": ["GMAIL", "MSC_LEGACY"]}


def test_at_most_four_files_outside_the_kind_modules_name_a_specific_kind() -> None:
    found = files_naming_a_kind(app_sources())
    listing = "\n".join(f"  {path}: {', '.join(names)}" for path, names in sorted(found.items()))
    assert len(found) <= MOST_FILES_NAMING_A_KIND, (
        f"{len(found)} files outside channels/kinds/ name a specific kind (ChannelKind.X); ask "
        f"the kind instead (channel.kind_spec, channels.kinds.values(...)):\n{listing}"
    )


def test_no_template_branches_on_a_channels_stored_kind() -> None:
    templates = sorted(ROOT.glob("templates/**/*.html")) + [
        path
        for path in sorted(ROOT.glob("*/templates/**/*.html"))
        if path.relative_to(ROOT).parts[0] not in (".venv", "tests", "static")
    ]
    assert len(templates) > 20  # the search looks where the templates are
    branching = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in templates
        for number, line in enumerate(Path(path).read_text().splitlines(), 1)
        if TEMPLATE_BRANCH.search(line)
    ]
    assert branching == [], f"ask channel.kind_spec instead: {branching}"


def test_every_stored_kind_has_its_module_and_every_module_is_complete() -> None:
    assert list(kinds.KINDS) == list(ChannelKind.values)
    assert [value for value, _ in Channel._meta.get_field("kind").choices] == ChannelKind.values
    for value, kind in kinds.KINDS.items():
        assert kinds.kind_of(value) is kind and kind.value == value
        assert kind.card.key == value and kind.label == ChannelKind(value).label
        assert kind.staff_label, value
        assert type(kind).deliver is not Kind.deliver, f"{value} cannot send"
        get_template(kind.overview_template)  # its card on Delivery channels exists
        if kind.connection_test:
            assert type(kind).check_connection is not Kind.check_connection, value
        if kind.scans_inbox and not kind.ews_inbox:
            assert kind.oauth_provider, f"{value}: inboxes are read with the OAuth grant"
            assert getattr(settings, kind.imap_setting), value
        if kind.ews_inbox:
            assert kind.scans_inbox and kind.connection_test, f"{value}: read with its password"
        if kind.oauth_provider:
            assert kinds.for_provider(kind.oauth_provider) is kind


def test_kinds_are_selected_by_what_they_are() -> None:
    assert kinds.values(legacy_only=True) == [ChannelKind.MSC_LEGACY]
    assert kinds.values(scans_inbox=True) == [
        ChannelKind.GMAIL,
        ChannelKind.EXCHANGE_ONLINE,
        ChannelKind.EXCHANGE_ONPREM,
    ]
    assert kinds.values(plugin="o365_plugin") == [
        ChannelKind.EXCHANGE_ONLINE,
        ChannelKind.EXCHANGE_ONPREM,
    ]
    modern = [card.key for card in kinds.catalogue(legacy_toutapp=False)]
    assert ChannelKind.MSC_LEGACY not in modern and modern[-1] == "marketo"
    assert ChannelKind.MSC_LEGACY in [c.key for c in kinds.catalogue(legacy_toutapp=True)]


def test_the_transports_and_the_registry_import_in_any_order(
    tmp_path: Path,
) -> None:
    """The transports import ``channels.kinds.config``, which loads the registry and so every
    kind module: a kind module that imported a transport at its top would break on whichever
    of them Python meets first. Each is imported first, then Django starts as usual."""
    # What code outside the registry imports from this cluster; a kind module itself first is
    # the registry first, the usual order.
    modules = [
        "channels.transports.smtp",
        "channels.transports.exchange",
        "channels.transports.graph",
        "channels.kinds.config",
        "channels.forms",
    ]
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env = {**base, "DJANGO_SETTINGS_MODULE": "msc_admin.settings", "MSC_VAR_DIR": str(tmp_path)}
    script = "import importlib, sys, django; importlib.import_module(sys.argv[1]); django.setup()"
    for module in modules:
        result = subprocess.run(
            [sys.executable, "-c", script, module],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"importing {module} first:\n{result.stderr[-2000:]}"


@pytest.mark.django_db(transaction=True)
def test_the_msc_pool_keeps_its_table_and_rows_when_it_moves_to_channels() -> None:
    """``MscServer`` moved from staff to channels in Django's state only: a server stored
    before the move is the same row after it."""
    before = [("delivery_channels", "0003_teamsendingsettings_spike_min_sent_and_more")]
    before += [("staff", "0002_legacymigration")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old_apps = MigrationExecutor(connection).loader.project_state(before).apps
        old_apps.get_model("staff", "MscServer").objects.create(
            name="relay-1", host="relay-1.msc.test", username="relay", secret="enc1:k1:x"
        )
    finally:
        MigrationExecutor(connection).migrate(latest)
    server = MscServer.objects.get()
    assert (server.name, server.host, server.secret) == ("relay-1", "relay-1.msc.test", "enc1:k1:x")
    assert MscServer._meta.db_table == "staff_mscserver"


def test_the_support_table_says_how_each_mailbox_kind_is_read_for_bounces() -> None:
    assert "through the Gmail API" in kinds.kind_of(ChannelKind.GMAIL).card.bounce_tracking
    online = kinds.kind_of(ChannelKind.EXCHANGE_ONLINE).card.bounce_tracking
    assert "Junk Email" in online and "Microsoft Graph" in online
    onprem = kinds.kind_of(ChannelKind.EXCHANGE_ONPREM).card.bounce_tracking
    assert "Junk Email through EWS" in onprem
