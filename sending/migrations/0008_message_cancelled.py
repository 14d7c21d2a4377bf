"""A campaign email whose person's campaign ended before it went is cancelled, not failed:
the new status, and the rows stored as failed for that reason moved to it."""

from typing import Any

from django.db import migrations, models

# sending.models.CAMPAIGN_ENDED, as it was written when this migration was made.
CAMPAIGN_ENDED = "campaign has ended"


def cancel_campaign_ended(apps: Any, schema_editor: Any) -> None:
    Message = apps.get_model("sending", "Message")
    Message.objects.filter(status="failed", status_detail__startswith=CAMPAIGN_ENDED).update(
        status="cancelled", failed_at=None
    )


def fail_campaign_ended(apps: Any, schema_editor: Any) -> None:
    Message = apps.get_model("sending", "Message")
    Message.objects.filter(status="cancelled").update(
        status="failed", failed_at=models.F("updated_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("sending", "0007_contactimport_runs"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="status",
            field=models.CharField(
                choices=[
                    ("draft", "Draft"),
                    ("scheduled", "Scheduled"),
                    ("queued", "Queued"),
                    ("sending", "Sending"),
                    ("sent", "Sent"),
                    ("failed", "Failed"),
                    ("bounced", "Bounced"),
                    ("cancelled", "Cancelled"),
                ],
                default="queued",
                max_length=10,
            ),
        ),
        migrations.RunPython(cancel_campaign_ended, fail_campaign_ended),
    ]
