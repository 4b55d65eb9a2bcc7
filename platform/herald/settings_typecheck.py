"""Settings for mypy's django-stubs plugin, which imports settings without services.

Only placeholders are added; nothing connects to them.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgresql://typecheck@localhost/typecheck")
os.environ.setdefault("REDIS_URL", "redis://localhost:6379/0")

from herald.settings import *  # noqa: E402, F403
