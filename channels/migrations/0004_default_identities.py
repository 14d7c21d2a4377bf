"""Every member who has joined has a default identity (their sign-in address). It used to be
made when they first opened Delivery channels; now it is made when they sign in, and this makes
it for members who joined before and never opened the page. Rows only: no schema change."""

from django.db import migrations
from django.utils import timezone


def make_default_identities(apps, schema_editor):  # noqa: ANN001, ANN201 - Django's signature
    Membership = apps.get_model("accounts", "Membership")
    Identity = apps.get_model("delivery_channels", "Identity")
    Channel = apps.get_model("delivery_channels", "Channel")
    have_one = Identity.objects.filter(is_default=True).values("user_id")
    joined = (
        Membership.objects.filter(joined_at__isnull=False)
        .exclude(user_id__in=have_one)
        .select_related("user")
    )
    now = timezone.now()
    for membership in joined.iterator():
        user = membership.user
        if Identity.objects.filter(user=user, email=user.email).exists():
            continue  # their address is one of their identities already
        name = f"{user.first_name} {user.last_name}".strip() or user.email.split("@")[0]
        Identity.objects.create(
            tenant_id=membership.tenant_id,
            user=user,
            email=user.email,
            name=name,
            is_default=True,
            verified_at=now,  # verified by their invitation, as identity_ensure_default says
            channel=Channel.objects.filter(owner=user).order_by("created_at").first(),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("delivery_channels", "0003_teamsendingsettings_spike_min_sent_and_more"),
    ]

    operations = [migrations.RunPython(make_default_identities, migrations.RunPython.noop)]
