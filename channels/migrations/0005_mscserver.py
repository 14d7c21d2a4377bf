# The MSC server pool moves from the staff app to channels: the model only, in Django's state.
# Its table keeps its name (staff_mscserver) and its rows; nothing runs on the database.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("delivery_channels", "0004_default_identities"),
        ("staff", "0002_legacymigration"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="MscServer",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "name",
                            models.CharField(
                                help_text="A label staff recognise, e.g. msc-relay-1.",
                                max_length=100,
                            ),
                        ),
                        ("host", models.CharField(max_length=253)),
                        ("port", models.PositiveIntegerField(default=587)),
                        (
                            "security",
                            models.CharField(
                                choices=[
                                    ("starttls", "STARTTLS (usually port 587)"),
                                    ("ssl_tls", "SSL/TLS from the first byte (usually port 465)"),
                                ],
                                default="starttls",
                                max_length=10,
                            ),
                        ),
                        (
                            "auth_method",
                            models.CharField(
                                choices=[
                                    ("PLAIN", "PLAIN"),
                                    ("LOGIN", "LOGIN"),
                                    ("CRAM-MD5", "CRAM-MD5"),
                                ],
                                default="PLAIN",
                                max_length=10,
                            ),
                        ),
                        ("username", models.CharField(max_length=200)),
                        ("secret", models.TextField(blank=True)),
                        ("enabled", models.BooleanField(default=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_check_at", models.DateTimeField(blank=True, null=True)),
                        ("last_check_ok", models.BooleanField(null=True)),
                        ("last_check_message", models.CharField(blank=True, max_length=500)),
                    ],
                    options={
                        "db_table": "staff_mscserver",
                        "ordering": ["name", "pk"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("host", "port", "username"), name="msc_server_once"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
