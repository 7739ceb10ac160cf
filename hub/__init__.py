"""The hub: app factory and wiring, settings, database engine and migrations, broker, identity
(users, roles, tokens), errors, observability and the command line. Every other package builds on
it; it imports none of them."""
