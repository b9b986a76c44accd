"""The admin's alert channels (issue #12), for superusers: email addresses
and apprise URLs that get every alert besides the environment's, with a
"Send a test alert" button. Imported by backups/admin.py.

The target is written only: its field never renders a stored value (a
password input, left empty to keep it), the list and the change page show
`target_hint` ("discord://…" or the address)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from backups import alerts
from backups.admin import SuperuserOnlyAdminMixin as SuperuserOnly
from backups.models import AlertChannel
from backups.services import alert_settings
from mcsite.errors import DomainError


class AlertChannelForm(forms.ModelForm):
    target = forms.CharField(
        required=False, strip=True, max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "size": 60}),
        help_text="An email address, or an apprise URL such as discord://webhook_id/webhook_token, "
                  "tgram://bot_token/chat_id or json://host/path. Written only: it is never shown again; "
                  "leave it empty to keep the stored one.")

    class Meta:
        model = AlertChannel
        fields = ["name", "kind", "target", "enabled"]

    def clean(self):
        data = super().clean()
        kind, target = data.get("kind"), data.get("target") or ""
        if not kind:
            return data
        if target:
            problem = alerts.channel_target_problem(kind, target)
        elif not self.instance.target_sealed:
            problem = "Enter the target: an email address or an apprise URL."
        elif kind != self.instance.kind and alerts.channel_target_problem(kind, self.instance.target):
            problem = f"The stored target is not a valid {kind} target: enter it again for the new kind."
        else:
            problem = ""
        if problem:
            self.add_error("target", problem)
        return data


def last_test_html(obj, *, ok_word: str, css: str):
    """When a channel or target was last tested and how it went (admin pages)."""
    if obj is None or obj.last_test_at is None:
        return "never tested"
    when = obj.last_test_at.strftime("%Y-%m-%d %H:%M %Z")
    if obj.last_test_ok:
        return format_html('<span class="{}-test-ok">{}</span> {}', css, ok_word, when)
    return format_html('<span class="{}-test-failed">Failed</span> {}: {}', css, when, obj.last_test_error)


@admin.register(AlertChannel)
class AlertChannelAdmin(SuperuserOnly, admin.ModelAdmin):
    form = AlertChannelForm
    change_form_template = "admin/backups/alertchannel/change_form.html"
    list_display = ("name", "kind", "target_hint", "enabled", "last_test_display")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "target_hint")
    readonly_fields = ("target_hint", "last_test_display")
    actions = ["send_test_selected"]

    def get_fields(self, request, obj=None):
        return ["name", "kind", "target", "enabled"] + (["target_hint", "last_test_display"] if obj else [])

    @admin.display(description="last test")
    def last_test_display(self, obj):
        return last_test_html(obj, ok_word="Delivered", css="alert")

    def save_model(self, request, obj, form, change):
        try:
            alert_settings.alert_channel_save(channel=obj, target=form.cleaned_data.get("target") or None,
                                              actor=request.user, request=request, source="admin")
        except DomainError as exc:  # the form checked the same; a race with another admin's change
            self.message_user(request, exc.message, messages.ERROR)

    def get_urls(self):
        test = self.admin_site.admin_view(require_POST(self.send_test_view))
        return [path("<path:object_id>/test/", test, name="backups_alertchannel_test"), *super().get_urls()]

    def _report(self, request, channel, error):
        if error:
            self.message_user(request, f"The test alert to “{channel.name}” failed: {error}", messages.ERROR)
        else:
            self.message_user(request, f"A test alert was delivered to “{channel.name}” ({channel.target_hint}).")

    def send_test_view(self, request, object_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        channel = get_object_or_404(AlertChannel, pk=object_id)
        error = alert_settings.alert_channel_test(channel=channel, actor=request.user, request=request)
        self._report(request, channel, error)
        return redirect(reverse("admin:backups_alertchannel_change", args=[channel.pk]))

    @admin.action(description="Send a test alert to the selected channels")
    def send_test_selected(self, request, queryset):
        for channel in queryset:
            self._report(request, channel,
                         alert_settings.alert_channel_test(channel=channel, actor=request.user, request=request))
