from django.conf import settings


def test_settings_use_utc_by_default_and_aware_datetimes():
    assert settings.USE_TZ is True
    assert settings.CELERY_TIMEZONE == settings.TIME_ZONE == settings.MCSITE_TIME_ZONE
