"""In-app notifications: stored per user, grouped, pushed live on ``user:<id>``."""
