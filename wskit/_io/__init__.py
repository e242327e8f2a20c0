"""The Trio I/O layer: sockets, tasks, timers and threads; no user API.

``transport`` moves bytes (the one write path), ``driver`` runs one
connection's state machine over the sans-I/O core, ``outlet`` is what a
``Sender`` sends through, ``dispatch`` calls a handler's hooks one at a time,
``server`` and ``client`` open connections, ``portal`` is the bridge to the
Trio thread for every other thread.
"""
