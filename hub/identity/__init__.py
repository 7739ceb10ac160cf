"""Identity: users, roles, passwords, access and refresh tokens, sessions, login throttling and
teacher verification."""
