from django import forms

from mcsite.errors import DomainError
from servers.announcements import AnnouncementError, check_message, normalise_countdown
from servers.models import Server
from servers.services import (LIVE_NEEDS_PASSWORD, busy_check_for_move, check_name, check_node_known,
                              check_rcon_host_allowed, resolve_server_directory)


class ServerForm(forms.ModelForm):
    """Used by the admin and the web pages: the directory is confined to the
    servers root and not shared, the RCON password is write-only, and only an
    administrator may set the start command (it runs on the host). Pass the
    acting `user`."""

    rcon_password = forms.CharField(
        label="RCON password", required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current password. Stored encrypted.",
    )
    clear_rcon_password = forms.BooleanField(required=False, label="Remove the stored RCON password")
    exclude_patterns = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Not backed up: one pattern per line, e.g. logs/ (a folder) or *.tmp",
    )

    class Meta:
        model = Server
        fields = [
            "name", "directory", "start_command", "memory_mb", "rcon_host", "rcon_port",
            "stop_timeout", "backup_mode", "exclude_patterns", "node",
            "announce", "announce_countdown", "announce_message", "announce_done_message", "announce_live",
        ]
        # Form labels only: the model's verbose names stay (changing them needs a migration).
        labels = {
            "directory": "Folder",
            "memory_mb": "Memory (MiB)",
            "rcon_host": "RCON host",
            "rcon_port": "RCON port",
            "stop_timeout": "Stop timeout (seconds)",
            "node": "Game host",
            "announce": "Warn players before a backup stops the server",
            "announce_countdown": "Warnings (seconds before the stop)",
            "announce_message": "Warning message",
            "announce_done_message": "Done message",
            "announce_live": "Announce live backups too",
        }
        help_texts = {
            "announce_countdown": "e.g. 60,30,10: said in game at each mark, then the backup starts "
                                  "(only when players are online). Empty: one warning, no wait.",
            "announce_message": "{seconds} becomes the time left, e.g. “The server stops for a backup in "
                                "{seconds} seconds.”",
            "stop_timeout": "How long a clean stop may take before the process is ended.",
            "node": "The machine that holds this server's folder. Leave “default” unless your "
                    "administrator runs several game hosts and told you the name of this one.",
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        patterns = self.instance.exclude_patterns if self.instance.pk else Server().exclude_patterns
        self.initial.setdefault("exclude_patterns", "\n".join(patterns or []))
        for name, low, high in (("memory_mb", 256, 262144), ("rcon_port", 1, 65535), ("stop_timeout", 1, 3600)):
            if name in self.fields:  # the browser's limits match the model's validators
                self.fields[name].widget.attrs.update({"min": low, "max": high})
        from django.conf import settings

        where = f" ({settings.MCSITE_SERVERS_ROOT})" if getattr(user, "is_superuser", False) else ""
        self.fields["directory"].help_text = f"The server's folder inside the servers root{where}, e.g. survival"
        if not getattr(user, "is_superuser", False) and "start_command" in self.fields:
            del self.fields["start_command"]
        if "announce_message" in self.fields:
            self.fields["announce_message"].required = False
        if not self.instance.has_rcon_password:
            # Nothing stored (a new server, say): there is nothing to remove.
            del self.fields["clear_rcon_password"]

    def _owner(self):
        """Who the server will belong to: the owner an administrator picked in
        this form (admin), else its current owner, else the acting user."""
        chosen = self.cleaned_data.get("owner")
        if chosen is not None:
            return chosen
        return self.instance.owner if self.instance.owner_id else self.user

    def _clean_directory(self, cleaned):
        """After the fields: the folder is checked on the chosen node (issue #15)."""
        if "directory" not in cleaned:
            return
        node = cleaned.get("node") or self.instance.node or Server._meta.get_field("node").default
        try:
            check_node_known(node)
            if self.instance.pk and node != self.instance.node:
                busy_check_for_move(self.instance)
        except DomainError as exc:
            self.add_error("node" if "node" in self.fields else None, exc.message)
            return
        try:
            cleaned["directory"] = resolve_server_directory(cleaned["directory"], exclude_pk=self.instance.pk,
                                                            owner=self._owner(), node=node)
        except DomainError as exc:
            self.add_error("directory", exc.message)

    def clean_rcon_host(self):
        host = self.cleaned_data["rcon_host"]
        current = self.instance.rcon_host if self.instance.pk else Server._meta.get_field("rcon_host").default
        try:
            check_rcon_host_allowed(actor=self.user, new=host, current=current)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return host

    def clean_name(self):
        name = self.cleaned_data["name"]
        try:
            check_name(name)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        owner = self.instance.owner if self.instance.owner_id else self.user
        if owner is not None and Server.objects.filter(owner=owner, name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("You already have a server with this name.")
        return name

    def _announcement(self, check, field: str):
        try:
            return check(self.cleaned_data.get(field) or "")
        except AnnouncementError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_announce_countdown(self):
        return self._announcement(normalise_countdown, "announce_countdown")

    def clean_announce_message(self):
        if not (self.cleaned_data.get("announce_message") or "").strip():  # left empty: the current text
            return self.instance.announce_message if self.instance.pk else Server().announce_message
        return self._announcement(check_message, "announce_message")

    def clean_announce_done_message(self):
        return self._announcement(lambda text: check_message(text, required=False), "announce_done_message")

    def clean_exclude_patterns(self):
        lines = [line.strip() for line in (self.cleaned_data.get("exclude_patterns") or "").splitlines()]
        patterns = [line for line in lines if line]
        if any(len(p) > 200 for p in patterns) or len(patterns) > 100:
            raise forms.ValidationError("At most 100 patterns of at most 200 characters each.")
        return patterns

    def clean(self):
        cleaned = super().clean()
        self._clean_directory(cleaned)
        mode = cleaned.get("backup_mode")
        if mode == Server.BackupMode.LIVE:
            typed = bool(cleaned.get("rcon_password"))
            kept = self.instance.has_rcon_password and not cleaned.get("clear_rcon_password")
            if not (typed or kept):
                self.add_error("backup_mode", LIVE_NEEDS_PASSWORD)
        return cleaned

    def service_data(self, *, changed_only: bool = False) -> dict:
        """The cleaned values as the server services take them: the RCON
        password only when one was typed (or cleared), and with
        `changed_only` just the fields the user changed."""
        data = {k: v for k, v in self.cleaned_data.items() if k not in ("rcon_password", "clear_rcon_password")}
        if changed_only:
            data = {k: v for k, v in data.items() if k in self.changed_data}
        if self.cleaned_data.get("clear_rcon_password"):
            data["rcon_password"] = ""
        elif self.cleaned_data.get("rcon_password"):
            data["rcon_password"] = self.cleaned_data["rcon_password"]
        return data

    def save(self, commit=True):
        server = super().save(commit=False)
        if self.cleaned_data.get("clear_rcon_password"):
            server.rcon_password = ""
        elif self.cleaned_data.get("rcon_password"):
            server.rcon_password = self.cleaned_data["rcon_password"]
        if commit:
            server.save()
        return server
