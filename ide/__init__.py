"""Collaborative documents and kernels: Yjs documents served over the y-websocket protocol with
pycrdt and pycrdt-websocket, their persistence and cross-process sync, and shared Python kernels
started through jupyter-server inside a sandbox."""
