"""Who is connected and how to reach them: the registry of connections, the
one delivery path (fan-out), the backplane seam, and ``Comms`` on top.

With ``Settings.backplane`` the backplane is ``redis.RedisBackplane``
(coredis, imported only then), speaking ``wire``'s packets to the other
nodes; without it, ``backplane.LocalBackplane``.

Nothing here reads a socket: connections are reached through their
:class:`~wskit._io.outlet.Outlet`, other threads through the
:class:`~wskit._io.portal.Portal`.
"""
