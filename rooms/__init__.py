"""Live rooms: chat rooms, watch-party rooms with server-authoritative playback state, IDE rooms
(presence, a shared document and a shared kernel) and call signalling. It sits on top of every
other package and is imported by none of them."""
