"""The owner's "Alerts" page (issue #12): which events email them about
their own servers. Through the same service as the API's
/api/alerts/preferences/; a user only ever sees and changes their own."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from backups import alerts
from backups.services import alert_settings
from mcsite.errors import DomainError


class AlertPreferencesForm(forms.Form):
    events = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Email me when",
        choices=list(alerts.ALERT_KINDS.items()))


@login_required
@require_http_methods(["GET", "POST"])
def alert_preferences(request):
    current = alert_settings.alert_preferences(request.user)
    if request.method == "POST":
        form = AlertPreferencesForm(request.POST)
        if form.is_valid():
            try:
                alert_settings.alert_preferences_set(user=request.user, events=form.cleaned_data["events"],
                                                     actor=request.user, request=request, source="web")
            except DomainError as exc:
                form.add_error("events", exc.message)
            else:
                messages.success(request, "Alert choices saved.")
                return redirect("alert-preferences")
    else:
        form = AlertPreferencesForm(initial={"events": current["events"]})
    return render(request, "backups/alert_preferences.html", {"form": form, "prefs": current})
