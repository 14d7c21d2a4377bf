"""The embedded default (``bin/run``) runs on SQLite, which the rest of the suite does not: its
send path, with runs over one session and a receiving-domain cap, through ``manage.py`` on a
throwaway SQLite database and the loopback relay. SQLite has no row locks (``FOR UPDATE``,
``SKIP LOCKED``); a statement that asks for them fails there and stops all sending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from msc_admin.devtls import Certificates
from tests.mailservers import SmtpServer
from tests.sending.conftest import RELAY_PASSWORD, RELAY_USER

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os
from django.db import transaction
from accounts.models import Membership, Role, Tenant, User
from channels import services as channels
from channels.kinds import Security, SmtpConfig
from sending.models import Message
from sending.services import Draft, message_create, one_run_per_channel

tenant = Tenant.objects.create(name="Acme", slug="acme")
admin = User.objects.create_user("admin@acme.test", "x" * 16)
Membership.objects.create(user=admin, tenant=tenant, role=Role.ADMIN)
rep = User.objects.create_user("rep@acme.test", "x" * 16)
Membership.objects.create(user=rep, tenant=tenant, role=Role.REP)
config = SmtpConfig(host="localhost", port=int(os.environ["RELAY_PORT"]),
    security=Security.STARTTLS, auth_method="PLAIN", username=os.environ["RELAY_USER"])
channels.channel_save_smtp(tenant=tenant, actor=admin, owner=None, config=config,
    password=os.environ["RELAY_PASSWORD"], use_for_all_members=True)
identity = channels.identity_ensure_default(user=rep, tenant=tenant)
channels.domain_cap_add(tenant=tenant, actor=admin, limit=1, period="hour", provider="google",
    domains=[])
with transaction.atomic(), one_run_per_channel():
    for to in ("a@gmail.com", "b@gmail.com", "c@prospect.example", "d@prospect.example"):
        draft = Draft(to_email=to, subject="Hi", body="Hi", identity=identity)
        message_create(tenant=tenant, sender=rep, draft=draft)
rows = Message.objects.order_by("pk").values_list("to_email", "status", "hold")
print("RESULT " + json.dumps([list(row) for row in rows]))
"""


def test_the_embedded_default_sends_runs_and_holds_a_capped_domain_on_sqlite(
    relay: SmtpServer, certs: Certificates, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL"}}
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path}/embedded.sqlite3",
        "MSC_OUTBOUND_ALLOW_PRIVATE": "true",
        "MSC_EXTRA_CA_FILE": str(certs.ca_file),
        "RELAY_PORT": str(relay.port),
        "RELAY_USER": RELAY_USER,
        "RELAY_PASSWORD": RELAY_PASSWORD,
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    done = subprocess.run(
        [*manage, "shell", "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [row for row in done.stdout.splitlines() if row.startswith("RESULT ")]
    rows = json.loads(line.removeprefix("RESULT "))
    assert rows == [
        ["a@gmail.com", "sent", ""],
        ["b@gmail.com", "queued", "domaincap"],  # one an hour to Google: it waits
        ["c@prospect.example", "sent", ""],
        ["d@prospect.example", "sent", ""],
    ]
    assert sorted(m["to"][0] for m in relay.received.messages) == [
        "a@gmail.com",
        "c@prospect.example",
        "d@prospect.example",
    ]
    assert len(relay.received.auth_attempts) == 1  # the run went over one session


WALK = """
import json
from django.test import Client
from django.test.utils import setup_test_environment
from accounts.models import User
from sending.models import Message
from tests.walk import Walker

setup_test_environment()  # lets the test client's host in
broken = {}
domain = Message.objects.filter(tenant__slug="acme").values_list("to_domain", flat=True).first()
for email in ("admin@acme.test", "rep@acme.test"):
    client = Client()
    client.force_login(User.objects.get(email=email))
    walker = Walker(email, client)
    walker.walk("/", depth=2)
    walker.walk(f"/analytics/?scope=team&range=30&domain={domain}", depth=1)
    broken |= {f"{email} {v.url}": v.status for v in walker.visits if v.status >= 500}
print("RESULT " + json.dumps(broken))
"""


def test_the_demo_pages_answer_on_sqlite(tmp_path: Path) -> None:
    """The pages a new user reaches from the demo's home, two clicks deep and from a receiving
    domain's analytics, on the embedded default's SQLite, which the rest of the suite does not
    use: SQL only PostgreSQL knows answered 500 there (``= ANY(array)``)."""
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL"}}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path}/demo.sqlite3", "DEBUG": "true"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "seed_demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    done = subprocess.run(
        [*manage, "shell", "-c", WALK], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [row for row in done.stdout.splitlines() if row.startswith("RESULT ")]
    assert json.loads(line.removeprefix("RESULT ")) == {}
