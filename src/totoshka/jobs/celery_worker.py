"""The app for Celery's own command line: ``celery -A totoshka.jobs.celery_worker worker``.

Celery's CLI finds an app by module attribute and cannot call a factory, so this
module is that process's edge: it reads `CeleryConfig` from the environment
(``TOTOSHKA_BROKER_URL``, ``TOTOSHKA_JOB_HANDLER``...) once, at import, and
nothing else imports it. ``totoshka worker`` builds its app through `run_worker`.
"""

from totoshka.jobs.celery_mode import make_app
from totoshka.jobs.celery_settings import CeleryConfig

app = make_app(CeleryConfig())
