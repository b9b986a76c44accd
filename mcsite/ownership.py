"""Who may see what, decided in one place (STYLE lesson 1). Every DRF
get_queryset, web view and admin changelist goes through `for_user`, so the
three front doors cannot drift apart. Superusers see everything; anyone else
sees the rows they own; anonymous users see nothing.

Ownership is always read from the live row that decides it (a server's
owner for everything that belongs to a server), never from a copy taken
earlier: when an admin gives a server to another user, every door to its
schedule, backups and restores moves with it at once."""

from django.db import models


class OwnedQuerySet(models.QuerySet):
    owner_lookup = "owner"

    def owner_filter(self, user) -> models.Q:
        """The rows `user` owns, as a Q; subclasses may combine lookups."""
        return models.Q(**{self.owner_lookup: user})

    def for_user(self, user):
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(self.owner_filter(user))


def owned_queryset(lookup: str) -> type[OwnedQuerySet]:
    return type(f"OwnedBy{lookup.title().replace('__', '')}QuerySet", (OwnedQuerySet,), {"owner_lookup": lookup})
