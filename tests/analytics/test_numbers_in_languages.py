"""Figures read in the reader's language: chart days and plural forms, shares and meters with
the language's number format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Tenant, User
from channels import services as channel_services
from reports.charts import step_chart, trend_chart
from reports.selectors import Day, ReasonLine, StepLine
from tests.mailservers import SmtpServer
from tests.sending.conftest import RELAY_PASSWORD, relay, relay_config  # noqa: F401


def _in[T](language: str, make: Callable[[], T]) -> T:
    with translation.override(language):
        return make()


def test_chart_days_and_tooltips_follow_the_language_and_its_plural_forms() -> None:
    days = [Day(date(2026, 11, 1), 1, 0), Day(date(2026, 11, 2), 2000, 2)]
    en = _in("en", lambda: trend_chart(days))
    pt = _in("pt-br", lambda: trend_chart(days))
    es = _in("es", lambda: trend_chart(days))
    assert (en.first, pt.first, es.first) == ("Nov 1", "1 de nov", "1 nov")
    assert en.sent[0].label == "Nov 1: 1 sent, 0 bounced"
    assert pt.sent[0].label == "1 de nov: 1 enviado, 0 devolvidos"  # zero is plural
    assert pt.sent[1].label == "2 de nov: 2.000 enviados, 2 devolvidos"
    assert es.sent[0].label == "1 nov: 1 enviado, 0 rebotados"
    assert pt.summary.startswith("2.001 enviados e 2 devolvidos de 1 de nov a 2 de nov")


def test_a_campaigns_steps_say_one_and_many_in_each_language() -> None:
    steps = [StepLine(1, "Opener", sent=1, hard=1), StepLine(2, "Nudge")]
    assert [b.label for b in _in("en", lambda: step_chart(steps).bars)] == [
        "Step 1 (Opener): 1 sent, 1 bounced",
        "Step 2 (Nudge): 0 sent, 0 bounced",
    ]
    assert _in("es", lambda: step_chart(steps).bars[0].label) == (
        "Paso 1 (Opener): 1 enviado, 1 rebotado"
    )


def test_a_reasons_share_is_written_with_the_languages_decimal_mark() -> None:
    line = ReasonLine("userunknown", True, 7, 7 / 11)
    assert line.bar == "63.6"  # an SVG width: never localised
    assert _in("en", lambda: line.percent) == "63.6 %"
    assert _in("es", lambda: line.percent) == "63,6 %"
    assert _in("pt-br", lambda: line.percent) == "63,6 %"


@pytest.mark.django_db(transaction=True)  # a request path: autocommit, as served
def test_the_outbox_meter_writes_its_figures_in_the_readers_number_format(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    relay: SmtpServer,  # noqa: F811
) -> None:
    channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=relay_config(relay, per_day=10000),
        password=RELAY_PASSWORD,
        use_for_all_members=True,
    )
    channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    User.objects.filter(pk=rep_user.pk).update(language="pt-br")
    client = Client()
    client.force_login(rep_user)
    page = client.get(reverse("sending:outbox")).content.decode()
    meter = page.split("<meter", 1)[1].split("</meter>", 1)[0]
    assert ">0/10.000" in meter and "10000" not in meter.split('max="10000"')[-1]
