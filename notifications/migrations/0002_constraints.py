from django.db import migrations, models


class Migration(migrations.Migration):
    """Indexes and multi-column constraints, kept apart from 0001 so tests can
    provision a schema at 0001 and prove later migrations (and their reversal,
    RemoveConstraint included) apply to it."""

    dependencies = [
        ('notifications', '0001_initial'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='idempotencyrecord',
            constraint=models.UniqueConstraint(fields=('endpoint', 'key'), name='idempotency_unique_key'),
        ),
        migrations.AddConstraint(
            model_name='preference',
            constraint=models.UniqueConstraint(fields=('subscriber', 'category'), name='preference_unique_category'),
        ),
        migrations.AddIndex(
            model_name='inboxitem',
            index=models.Index(fields=['subscriber', 'seq'], name='inboxitem_subscriber_seq'),
        ),
        migrations.AddIndex(
            model_name='inboxitem',
            index=models.Index(condition=models.Q(('archived_at__isnull', True), ('read_at__isnull', True)), fields=['subscriber'], name='inboxitem_unread'),
        ),
        migrations.AddConstraint(
            model_name='inboxitem',
            constraint=models.UniqueConstraint(fields=('subscriber', 'message'), name='inboxitem_unique_message'),
        ),
        migrations.AddIndex(
            model_name='topicsubscription',
            index=models.Index(fields=['subscriber'], name='topicsub_subscriber'),
        ),
        migrations.AddConstraint(
            model_name='topicsubscription',
            constraint=models.UniqueConstraint(fields=('topic', 'subscriber'), name='topicsub_unique'),
        ),
    ]
