"""RFC 6455 conformance suite, modelled on the Autobahn|Testsuite categories.

Raw sockets and hand-made frames (``_frames.py``) against a wskit echo
server, and a hand-made frame server against a wskit client.
"""
