from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0003_inbox_lean"),
    ]

    operations = [
        migrations.AddField(
            model_name="inboxitem",
            name="delivered_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
