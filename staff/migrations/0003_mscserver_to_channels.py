# The MSC server pool moved to channels (delivery_channels 0004): forget the model here, in
# Django's state only. Its table, staff_mscserver, and its rows stay as they are.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("staff", "0002_legacymigration"),
        ("delivery_channels", "0005_mscserver"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="MscServer"),
            ],
            database_operations=[],
        ),
    ]
