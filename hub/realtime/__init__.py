"""The real-time gateway: one WebSocket per browser tab (``/ws``), multiplexed channels, durable
channels with per-channel sequence numbers replayed from the database, presence and typing."""
