"""Collaborative documents and kernels: Yjs documents (pycrdt) served over the y-websocket
protocol, their persistence and cross-process sync, and shared Python kernels started through
jupyter-server inside a sandbox."""
