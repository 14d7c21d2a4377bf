from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def tell_migrated_users(migration_id: int) -> None:
    from staff import services

    services.tell_migrated_users(migration_id)
