"""Settings of the gunicorn server started by bench/http_outreach.py: the app's own settings plus one
bench-only URL (the baseline endpoint), never part of the shipped URLconf."""

from servicing.settings import *  # noqa: F403

ROOT_URLCONF = "bench.http_outreach_urls"
